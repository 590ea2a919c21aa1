"""Shared CLI plumbing: the data directory, the console, and readable errors."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys

import typer
from rich.console import Console

from infra.settings import Paths

#: environment variable: a log level (DEBUG, INFO, WARNING) shows every library's records from that level
ENV_LOG_LEVEL = "GLUTEFLOW_LOG_LEVEL"
#: libraries whose log records are noise in a normal run: kafka-python's reconnect and event-loop timing
#: notes and its "Metadata refresh failed Cancelled" at shutdown, Beam's notes on optional GCP clients,
#: Great Expectations' temporary directories. Their real failures reach us as exceptions.
QUIET_LIBRARIES = ("kafka", "apache_beam", "great_expectations", "urllib3", "matplotlib")

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


def _not_library_root_record(record: logging.LogRecord) -> bool:
    """Drop records a library logged on the root logger (Beam's ``logging.warning("apitools not found")``)."""
    return not (record.name == "root" and "site-packages" in record.pathname)


def configure_logging() -> None:
    """One stderr handler for the whole CLI: our own warnings show, library noise does not.

    With ``GLUTEFLOW_LOG_LEVEL`` set, everything from that level shows, libraries included.
    """
    level = os.environ.get(ENV_LOG_LEVEL, "").strip().upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # replace a plain stderr handler an early logging.warning() installed (basicConfig); keep others
    # (e.g. a test runner's capture handlers). A handler on root also stops later basicConfig calls.
    root.handlers = [h for h in root.handlers if type(h) is not logging.StreamHandler] + [handler]
    threshold = level if level in logging.getLevelNamesMapping() else logging.WARNING
    root.setLevel(threshold)
    handler.setLevel(threshold)  # libraries that set their own loggers to INFO still stop here
    if level:
        return
    handler.addFilter(_not_library_root_record)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL)
