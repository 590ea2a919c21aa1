-- dead_letters — grain: one row per rejected input (reason, stage, source coordinates).
SELECT * FROM stg_dead_letters
