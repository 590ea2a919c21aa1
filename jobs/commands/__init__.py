"""CLI command groups. Each module defines ``register(app: typer.Typer) -> None``."""

#: modules registered by jobs.cli, in --help order
COMMAND_MODULES: list[str] = [
    "jobs.commands.infra_cmds",
]
