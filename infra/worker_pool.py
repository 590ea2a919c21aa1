"""Forked worker processes kept for a whole run: the stream job's shards and publishers.

Why keep them: a process's first Beam pipeline is its slowest. Forked afresh for every batch, each
shard paid that warm-up (Beam's lazy imports and caches, DoFn signature memos, the fast block
reader's layouts and templates, a Kafka connection) on every batch: measured 1.1-1.3 s per small
batch against 0.7 s once a process has run one (``gluteflow stream`` on a 2 x 20 s backlog cut into
four batches, 2026-12-01). A worker ``gc.freeze()``s what it inherits, keeps freed heap during a
task and hands it back after it (:mod:`infra.procs`), and retires once it has grown (see
:data:`MAX_GROWTH_BYTES`).

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

from infra.procs import die_with_parent, keep_freed_memory, release_freed_memory

Task = tuple[Callable[..., Any], tuple]
#: a worker whose resident memory after a task exceeds what it had after its first task by more than
#: this retires (exits; the next run forks a fresh one). Kept workers grew 50-100 MB a full 64 MiB
#: batch (fragmented heap: the job's peak PSS went from 0.88 GB in the first batch of a 600 MB backlog
#: to 1.36-1.49 GB by the sixth; 1.24 GB with retirement, 0.83-1.11 GB forked per batch), while small
#: live batches keep them flat and warm.
MAX_GROWTH_BYTES = 64 * 1024 * 1024


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker_main(conn: Connection, parent_pid: int, max_growth_bytes: int) -> None:
    die_with_parent(parent_pid)
    keep_freed_memory()  # 0.8 s less system time on the 100 MB bench input (page faults)
    # the inherited heap is never collected again: a full collection no longer walks (and, by touching
    # their reference counts, copies) the parent's millions of objects. Small batches ran 12 % faster
    # (3.0-3.2 s against 3.4-3.9 s, three alternating pairs); on large ones it is within noise
    gc.freeze()
    baseline = None
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
            status, detail = "ok", ""
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises
            status, detail = "error", traceback.format_exc()
        del task, fn, args
        gc.collect()  # the task's garbage, then freed memory back to the kernel
        release_freed_memory()
        resident = _resident_bytes()
        baseline = resident if baseline is None else baseline
        retire = resident > baseline + max_growth_bytes
        conn.send((status, detail, retire))
        if retire:
            return


class WorkerPool:
    """``size`` forked worker processes that run tasks and stay alive between calls.

    ``run(tasks)`` gives task *i* to worker *i* (at most ``size`` tasks), waits for all of them and
    raises :class:`RuntimeError` naming every task that failed (with its traceback) or whose worker
    died; the pool is closed then, and a later ``run`` forks new workers. A worker whose memory grew
    by more than ``max_growth_bytes`` since its first task retires after its task and is replaced on
    the next run. ``size <= 1``: tasks run in this process, one after the other.
    """

    def __init__(self, size: int, max_growth_bytes: int = MAX_GROWTH_BYTES):
        self.size = size
        self.max_growth_bytes = max_growth_bytes
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection] | None] = []
        self.retired = 0

    def _fork(self) -> tuple[multiprocessing.process.BaseProcess, Connection]:
        ctx = multiprocessing.get_context("fork")
        parent_end, child_end = ctx.Pipe()
        args = (child_end, os.getpid(), self.max_growth_bytes)
        proc = ctx.Process(target=_worker_main, args=args, daemon=True)
        proc.start()
        child_end.close()
        return proc, parent_end

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (empty before the first run)."""
        return [w[0].pid for w in self._workers if w is not None and w[0].pid is not None]

    def run(self, tasks: list[Task]) -> None:
        if len(tasks) > max(1, self.size):
            raise ValueError(f"{len(tasks)} tasks for a pool of {self.size}")
        if self.size <= 1:
            for fn, args in tasks:
                fn(*args)
            return
        if not self._workers:
            self._workers = [None] * self.size
        for i in range(len(tasks)):
            if self._workers[i] is None:
                self._workers[i] = self._fork()
        for i, task in enumerate(tasks):
            self._workers[i][1].send(task)
        failed: dict[int, str] = {}
        for i in range(len(tasks)):
            proc, conn = self._workers[i]
            try:
                status, detail, retire = conn.recv()
            except EOFError:
                proc.join(timeout=5)
                status, detail, retire = "died", f"worker exited with code {proc.exitcode}", True
            if status != "ok":
                failed[i] = detail
            if retire:
                proc.join(timeout=10)
                conn.close()
                self._workers[i] = None
                self.retired += 1
        if failed:
            self.close()
            details = "\n".join(f"[task {i}] {detail.strip()[-2000:]}" for i, detail in failed.items())
            raise RuntimeError(f"stream worker task(s) {sorted(failed)} failed:\n{details}")

    def close(self) -> None:
        """Ask every worker to exit and reap it (killed if it does not exit within 10 s)."""
        live = [w for w in self._workers if w is not None]
        for _, conn in live:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            conn.close()
        for proc, _ in live:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
