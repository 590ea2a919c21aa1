"""Forked worker processes kept for a whole run: the stream job's shards and publishers.

Why keep them: a process's first Beam pipeline is its slowest. Forked afresh for every batch, each
shard paid that warm-up (Beam's lazy imports and caches, DoFn signature memos, the fast block
reader's layouts and templates, a Kafka connection) on every batch: measured 1.3-1.5 s per small
batch against 0.7 s once a process has run one (``gluteflow stream`` on a 2 x 20 s backlog cut into
four batches, 2026-12-01).

Workers are forked (they share the already imported Beam and pyarrow; a spawned interpreter pays
~2 s of imports) on the first :meth:`WorkerPool.run`, from the main thread, with no other threads
alive in the parent (kafka-python clients are closed before). Each dies with its parent
(``PR_SET_PDEATHSIG``), so a SIGKILLed driver leaves nothing writing into a staging directory that its
rerun wipes. A task is ``(function, args)``, both picklable; results travel through files the tasks
write, not return values.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from infra.procs import die_with_parent

Task = tuple[Callable[..., Any], tuple]


def _worker_main(conn: Connection, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    # the inherited heap is never collected again: a full collection no longer walks (and, by touching
    # their reference counts, copies) the parent's millions of objects. Small batches ran 12 % faster
    # (3.0-3.2 s against 3.4-3.9 s, three alternating pairs); on large ones it is within noise
    gc.freeze()
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the pool was closed or the parent died
            return
        if task is None:
            return
        fn, args = task
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("ok", ""))


class WorkerPool:
    """``size`` forked worker processes that run tasks and stay alive between calls.

    ``run(tasks)`` gives task *i* to worker *i* (at most ``size`` tasks), waits for all of them and
    raises :class:`RuntimeError` naming every task that failed (with its traceback) or whose worker
    died; the pool is closed then, and a later ``run`` forks new workers. ``size <= 1``: tasks run in
    this process, one after the other.
    """

    def __init__(self, size: int):
        self.size = size
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        for _ in range(self.size):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child_end, os.getpid()), daemon=True)
            proc.start()
            child_end.close()
            self._workers.append((proc, parent_end))

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (empty before the first run)."""
        return [proc.pid for proc, _ in self._workers if proc.pid is not None]

    def run(self, tasks: list[Task]) -> None:
        if len(tasks) > max(1, self.size):
            raise ValueError(f"{len(tasks)} tasks for a pool of {self.size}")
        if self.size <= 1:
            for fn, args in tasks:
                fn(*args)
            return
        if not self._workers:
            self._start()
        busy = list(zip(self._workers, tasks, strict=False))
        for (_, conn), task in busy:
            conn.send(task)
        failed: dict[int, str] = {}
        for i, ((proc, conn), _) in enumerate(busy):
            try:
                status, detail = conn.recv()
            except EOFError:
                proc.join(timeout=5)
                status, detail = "died", f"worker exited with code {proc.exitcode}"
            if status != "ok":
                failed[i] = detail
        if failed:
            self.close()
            details = "\n".join(f"[task {i}] {detail.strip()[-2000:]}" for i, detail in failed.items())
            raise RuntimeError(f"stream worker task(s) {sorted(failed)} failed:\n{details}")

    def close(self) -> None:
        """Ask every worker to exit and reap it (killed if it does not exit within 10 s)."""
        for _, conn in self._workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            conn.close()
        for proc, _ in self._workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
