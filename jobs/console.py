"""Shared CLI plumbing: the data directory, the console, and readable errors."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console

from infra.settings import Paths

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def paths_from(ctx: typer.Context) -> Paths:
    """The data directory chosen by ``--data-dir`` / ``GLUTEFLOW_DATA_DIR`` (default ./data)."""
    root = ctx.find_root()
    return Paths.resolve((root.obj or {}).get("data_dir")).ensure()


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def parse_date(value: str | None, flag: str) -> dt.date | None:
    """``YYYY-MM-DD`` from option ``flag`` (``None`` stays ``None``); a clear error otherwise."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"{flag} {value!r} is not a date (YYYY-MM-DD)")
    return None
