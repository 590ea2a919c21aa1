"""The whole chain on embedded defaults: broker -> simulate -> import-fit -> stream -> daily -> nightly -> catalog.

Each step runs the real ``gluteflow`` subcommand in a child process against one broker (the
embedded Tansu unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), so ``gluteflow run`` does exactly what
a user typing the steps would do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra import broker, topics
from infra.settings import ENV_DATA_DIR, Paths

FIT_RUNNER_ID = "fit-runner-001"
EXAMPLE_QUERY = (
    "SELECT r.cohort, count(*) AS runners, round(avg(risk_score), 1) AS mean_risk, "
    "count(*) FILTER (WHERE risk_level <> 'low') AS flagged, "
    "round(median(glute_share_median), 3) AS median_glute_share "
    "FROM injury_risk r JOIN daily d ON d.runner_id = r.runner_id AND d.local_date = r.report_date "
    "WHERE r.report_date = (SELECT max(report_date) FROM injury_risk) GROUP BY r.cohort ORDER BY mean_risk DESC"
)


@dataclass
class Step:
    name: str
    args: list[str]
    ok_codes: tuple[int, ...] = (0,)
    note: str = ""


@dataclass
class ChainResult:
    timings_s: dict[str, float] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    started_broker: bool = False  # False: an external cluster or an already running broker was used


def default_fit_dir() -> Path:
    """``../shared/fixtures/fit`` beside the repository (may not exist)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "fit"


def plan_steps(
    runners: int,
    days: int,
    start: dt.date,
    seed: int,
    fit_files: list[Path],
    duration_scale: float,
    block_s: int,
    stories: bool = True,
    via: str | None = None,
) -> list[Step]:
    last = start + dt.timedelta(days=days - 1)
    steps = [
        Step("topics", ["topics", "apply"]),
        Step(
            "simulate",
            [
                "simulate",
                "--runners",
                str(runners),
                "--days",
                str(days),
                "--start",
                start.isoformat(),
                "--seed",
                str(seed),
                "--duration-scale",
                str(duration_scale),
                "--block-seconds",
                str(block_s),
                "--stories" if stories else "--no-stories",
                *(["--via", via] if via else []),
            ],
        ),
    ]
    if fit_files:
        steps.append(
            Step(
                "import-fit",
                ["import-fit", *map(str, fit_files), "--runner", FIT_RUNNER_ID],
                ok_codes=(0, 1),
                note="corrupt fixture files are expected to be dead-lettered (exit 1)",
            )
        )
    steps += [
        Step("stream", ["stream", "--until-idle", "3", "--drain"]),
        Step("daily", ["daily", "--from", start.isoformat(), "--to", last.isoformat()]),
        Step("nightly", ["nightly", "--date", last.isoformat()]),
        Step("counts", ["counts"]),
        Step("example query", ["sql", "-c", EXAMPLE_QUERY]),
    ]
    return steps


def run_chain(
    paths: Paths,
    runners: int,
    days: int,
    start: dt.date,
    seed: int,
    fit_files: list[Path],
    duration_scale: float = 1.0,
    block_s: int = 1,
    say: Callable[[str], None] = print,
    stories: bool = True,
    via_gateway: bool = False,
) -> ChainResult:
    """Run every step; raise RuntimeError naming the step that failed. Stops the broker it started.
    ``via_gateway``: the fleet goes through a ``gluteflow gateway`` started (and stopped) here."""
    result = ChainResult()
    env = dict(os.environ, **{ENV_DATA_DIR: str(paths.root)})
    exe = [sys.executable, "-m", "jobs.cli"]
    with broker.running_broker(paths) as info, contextlib.ExitStack() as stack:
        result.started_broker = info.started_here
        where = "external cluster" if info.external else f"embedded Tansu, pid {info.pid}"
        say(f"[bold]broker[/] {info.bootstrap} ({where})")
        topics.apply(info.bootstrap)
        via = None
        if via_gateway:
            from gateway.server import gateway_process

            # the whole simulated fleet is one client: the per-device limit is for real devices
            gw = stack.enter_context(
                gateway_process(env, paths.root / "gateway" / "gateway.log", ["--rate-limit", "1000/second"])
            )
            via = gw.url
            say(f"[bold]gateway[/] {gw.url} (pid {gw.pid}, log {gw.log_file})")
        steps = plan_steps(runners, days, start, seed, fit_files, duration_scale, block_s, stories, via=via)
        for step in steps:
            say(f"\n[bold cyan]== {step.name}[/]  gluteflow {' '.join(step.args)[:160]}")
            t0 = time.perf_counter()
            code = subprocess.call(exe + step.args, env=env)
            result.timings_s[step.name] = time.perf_counter() - t0
            if code not in step.ok_codes:
                raise RuntimeError(f"step {step.name!r} failed with exit code {code}")
            if code != 0 and step.note:
                say(f"[yellow]{step.name}: exit {code} ({step.note})[/]")
    result.reports = sorted(paths.reports.rglob("*.html")) if paths.reports.exists() else []
    return result
