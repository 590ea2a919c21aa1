"""The ``gluteflow`` command."""

from __future__ import annotations

import importlib

import typer

from infra.settings import ENV_DATA_DIR
from jobs.commands import COMMAND_MODULES
from jobs.console import configure_logging

app = typer.Typer(
    name="gluteflow",
    help="Runners' wearable data -> per-stride gait features, daily load, compensation and injury-risk reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: str = typer.Option(
        None,
        "--data-dir",
        envvar=ENV_DATA_DIR,
        help="Root of every output (lake, catalog, reports). Default ./data",
    ),
) -> None:
    configure_logging()
    ctx.obj = {"data_dir": data_dir}


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
