"""`gluteflow stream`: the stride-feature stream job (micro-batches of bounded Beam pipelines)."""

from __future__ import annotations

import logging

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra import broker
from jobs.console import console, fail, paths_from


def register(app: typer.Typer) -> None:
    @app.command("stream", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def stream(
        ctx: typer.Context,
        runner: str = typer.Option(
            None,
            "--runner",
            help="A Beam streaming runner (PrismRunner, FlinkRunner, DataflowRunner, ...): run the job "
            "unbounded there; other Beam options (--flink_master=..., --project=...) pass through. "
            "Default: the local micro-batch executor.",
        ),
        run_for: float = typer.Option(None, "--run-for", help="With --runner: stop the job after S seconds."),
        drain: bool = typer.Option(
            False,
            "--drain",
            help="With --until-idle: when idle, close every open session (its strides are written; blocks "
            "that arrive for it later are dead-lettered late), as draining a streaming job does.",
        ),
        once: bool = typer.Option(False, "--once", help="Run one batch and exit."),
        until_idle: float = typer.Option(
            None,
            "--until-idle",
            help="Exit after this many seconds without new messages (default: run forever).",
        ),
        max_batch_bytes: int = typer.Option(
            64 * 1024 * 1024, "--max-batch-bytes", help="Cap on input bytes per batch (memory bound)."
        ),
        allowed_lateness_s: float = typer.Option(30.0, "--allowed-lateness", help="Allowed lateness, s."),
        kafka_reader: str = typer.Option(
            "python",
            "--kafka-reader",
            help="python: splittable DoFn over kafka-python; java (with --runner): Beam's cross-language "
            "ReadFromKafka (needs Java and an expansion service: make kafka-expansion).",
        ),
        workers: int = typer.Option(
            0,
            "--workers",
            help="Processes per batch, each running the pipeline on its share of the partitions "
            "(0 = one per core, at most 4; 1 = in this process).",
        ),
        reset_offsets: str = typer.Option(
            None,
            "--reset-offsets",
            help="Where the checkpoint's offsets no longer point into a partition (topic recreated, broker "
            "restarted with empty topics, messages deleted): start there from the earliest or latest offset. "
            "Without it the job stops and says so. earliest | latest.",
        ),
    ) -> None:
        """Kafka sensor blocks -> per-stride features in the lake (strides, watch_records, sessions,
        runners, dead_letters) and the strides topic. Crash-safe: rerun after any kill."""
        from jobs.stream_driver import StreamOptions, run
        from pipelines.stream.sessionize import StreamParams

        # kafka-python logs every reconnect attempt; the job says once what is wrong with the broker
        logging.getLogger("kafka").setLevel(logging.CRITICAL)

        if kafka_reader not in ("python", "java"):
            fail("--kafka-reader must be python or java")
        if reset_offsets not in (None, "earliest", "latest"):
            fail("--reset-offsets must be earliest or latest")
        paths = paths_from(ctx)
        try:
            bootstrap = broker.bootstrap_servers(paths)
        except broker.BrokerError as exc:
            fail(str(exc))
        if runner:
            params = StreamParams(allowed_lateness_s=allowed_lateness_s)
            _on_runner(bootstrap, paths, params, kafka_reader, [f"--runner={runner}", *ctx.args], run_for)
            return
        if ctx.args:
            fail(f"unknown options {' '.join(ctx.args)} (Beam options need --runner)")
        if kafka_reader == "java":
            fail(
                "--kafka-reader java reads with Beam's cross-language ReadFromKafka, which needs a streaming "
                "runner: add --runner PrismRunner (or FlinkRunner, DataflowRunner)"
            )
        opts = StreamOptions(
            bootstrap=bootstrap,
            paths=paths,
            max_batch_bytes=max_batch_bytes,
            params=StreamParams(allowed_lateness_s=allowed_lateness_s),
            workers=workers,
            reset_offsets=reset_offsets,
        )
        progress = Progress(
            TextColumn("[bold]stream[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("messages"),
            TimeElapsedColumn(),
            console=console,
            # no refresh thread: batches fork shard processes, and a thread that holds the console's
            # lock while the driver forks would leave that lock held forever in the child
            auto_refresh=False,
        )
        task = progress.add_task("stream", total=None)
        done = {"n": 0}

        def on_batch(res, backlog: int) -> None:
            done["n"] += res.messages
            progress.update(task, completed=done["n"], total=done["n"] - res.messages + backlog, refresh=True)
            c = res.counters
            dead = {k.removeprefix("dead_letters_"): v for k, v in c.items() if k.startswith("dead_letters_")}
            # headers short enough for an 80-column terminal (the caption explains "ok")
            table = Table(
                title=f"batch {res.batch}",
                show_header=True,
                title_justify="left",
                caption="ok: messages in = accepted + dead-lettered",
                caption_justify="left",
            )
            for col in ("messages", "MB", "s", "blocks", "strides", "duplicates", "rejected", "ok"):
                table.add_column(col)
            table.add_row(
                str(res.messages),
                f"{res.bytes / 1e6:.1f}",
                f"{res.seconds:.1f}",
                str(c.get("blocks_in", 0)),
                str(c.get("strides_out", 0)),
                str(c.get("duplicates_dropped", 0)),
                ", ".join(f"{k}={v}" for k, v in sorted(dead.items())) or "0",
                "[green]yes[/]" if res.reconciles else "[red]NO[/]",
            )
            progress.console.print(table)

        try:
            with progress:
                results = run(
                    opts,
                    once=once,
                    until_idle_s=until_idle,
                    on_batch=on_batch,
                    log=console.print,
                    drain=drain,
                )
        except RuntimeError as exc:
            fail(str(exc))
        total = sum(r.counters.get("strides_out", 0) for r in results)
        console.print(
            f"{len(results)} batches, {done['n']} messages, {total} strides -> {paths.table('strides')}"
        )


def _on_runner(
    bootstrap: str, paths, params, reader: str, pipeline_args: list[str], run_for: float | None
) -> None:
    """``gluteflow stream --runner ...``: submit the unbounded job, wait, cancel on Ctrl-C or ``--run-for``."""
    from infra.runners import RunnerUnavailable
    from jobs.stream_driver import load_checkpoint
    from jobs.stream_runner import StreamingJob, run_streaming

    job = StreamingJob(bootstrap, paths, params, reader)
    console.print(f"stream: unbounded on {pipeline_args[0].split('=', 1)[1]} (Ctrl-C stops it)")
    try:
        offsets = load_checkpoint(paths)["offsets"]
        result = run_streaming(job, pipeline_args, offsets, run_for_s=run_for, quiet_stop=True)
    except RunnerUnavailable as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("stream: stopped")
        return
    console.print(f"stream: {result.state}; tables under {paths.lake}")
