"""CLI command groups. Each module defines ``register(app: typer.Typer) -> None``."""

#: modules registered by jobs.cli, in --help order
COMMAND_MODULES: list[str] = [
    "jobs.commands.run_cmd",
    "jobs.commands.stream_cmd",
    "jobs.commands.infra_cmds",
    "jobs.commands.simulate_cmd",
    "jobs.commands.daily_cmd",
    "jobs.commands.fit_cmd",
    "jobs.commands.counts_cmd",
    "jobs.commands.nightly_cmd",
    "jobs.commands.sql_cmd",
    "jobs.commands.gateway_cmd",
]
