"""The analysts DuckDB catalog: views over the lake (see builder.py)."""
