"""CLI logging: our warnings show, library noise does not (unless GLUTEFLOW_LOG_LEVEL asks for it)."""

from __future__ import annotations

import logging

import pytest

from jobs.console import ENV_LOG_LEVEL, QUIET_LIBRARIES, configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in QUIET_LIBRARIES})
    yield
    root.handlers, root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def _root_record_from_a_library(msg: str) -> None:
    """What Beam does: ``logging.warning(...)`` on the root logger from a module in site-packages."""
    record = logging.getLogger().makeRecord(
        "root", logging.WARNING, "/venv/lib/python3.11/site-packages/apache_beam/x.py", 1, msg, None, None
    )
    logging.getLogger().handle(record)


def test_library_noise_is_dropped_and_our_warnings_show(restore_logging, capsys, monkeypatch):
    monkeypatch.delenv(ENV_LOG_LEVEL, raising=False)
    configure_logging()
    logging.getLogger("kafka.cluster").error("Metadata refresh: failed Cancelled")
    logging.getLogger("kafka.net.selector").warning("Task ran for 0.145s: blocking the event loop")
    logging.getLogger("great_expectations.data_context").info("Created temporary directory")
    _root_record_from_a_library("apitools not found")
    logging.getLogger("pipelines.quality.data_docs").warning("Data Docs could not be written")
    err = capsys.readouterr().err
    assert err == "WARNING pipelines.quality.data_docs: Data Docs could not be written\n"


def test_log_level_variable_shows_libraries(restore_logging, capsys, monkeypatch):
    monkeypatch.setenv(ENV_LOG_LEVEL, "info")
    configure_logging()
    logging.getLogger("kafka.cluster").error("Metadata refresh: failed Cancelled")
    _root_record_from_a_library("apitools not found")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ERROR kafka.cluster: Metadata refresh: failed Cancelled",
        "WARNING root: apitools not found",
    ]
