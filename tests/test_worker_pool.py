"""The stream job's worker pool: forked once, reused between runs, failures raised with their cause."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.worker_pool import WorkerPool


def _write_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)


def _pids(tmp_path: Path, pool: WorkerPool, n: int) -> list[int]:
    files = [tmp_path / f"pid-{i}" for i in range(n)]
    pool.run([(_write_pid, (str(f),)) for f in files])
    return [int(f.read_text()) for f in files]


def test_workers_are_forked_once_and_reused(tmp_path: Path) -> None:
    with WorkerPool(2) as pool:
        first = _pids(tmp_path, pool, 2)
        assert len(set(first)) == 2 and os.getpid() not in first  # two processes, not this one
        assert sorted(first) == sorted(pool.pids)
        assert _pids(tmp_path, pool, 2) == first  # the same processes run the next tasks
        assert _pids(tmp_path, pool, 1) == first[:1]
    assert pool.pids == []


def test_a_failing_task_raises_with_its_traceback_and_the_pool_starts_afresh(tmp_path: Path) -> None:
    with WorkerPool(2) as pool:
        before = _pids(tmp_path, pool, 2)
        with pytest.raises(RuntimeError, match=r"task\(s\) \[1\] failed") as info:
            pool.run([(_write_pid, (str(tmp_path / "ok"),)), (_fail, ("shard exploded",))])
        assert "ValueError: shard exploded" in str(info.value)
        assert (tmp_path / "ok").exists()  # the other task still ran to its end
        assert pool.pids == []  # closed after a failure
        after = _pids(tmp_path, pool, 2)  # and forked anew on the next run
        assert not set(after) & set(before)


def test_a_worker_that_dies_is_reported_not_waited_for(tmp_path: Path) -> None:
    with WorkerPool(2) as pool:
        with pytest.raises(RuntimeError, match="exited with code 3"):
            pool.run([(_die, ()), (_write_pid, (str(tmp_path / "ok"),))])
        assert len(_pids(tmp_path, pool, 2)) == 2


def test_one_worker_runs_tasks_in_this_process(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    assert _pids(tmp_path, pool, 1) == [os.getpid()]
    with pytest.raises(ValueError, match="2 tasks for a pool of 1"):
        pool.run([(_write_pid, ("a",)), (_write_pid, ("b",))])


def _malloc_settings_took(path: str) -> None:
    from infra.procs import keep_freed_memory

    Path(path).write_text(str(keep_freed_memory()))


def test_workers_keep_freed_memory_on_glibc(tmp_path: Path) -> None:
    """Each worker sets glibc's malloc thresholds (fewer page faults); ``mallopt`` accepts them here."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    with WorkerPool(2) as pool:
        pool.run([(_malloc_settings_took, (str(tmp_path / f"m{i}"),)) for i in range(2)])
    assert [(tmp_path / f"m{i}").read_text() for i in range(2)] == ["True", "True"]


_KEPT: list[bytes] = []


def _keep_memory(n_bytes: int) -> None:
    _KEPT.append(b"\x01" * n_bytes)  # touched pages, kept after the task: the worker has grown


def test_a_worker_that_grew_retires_and_is_replaced(tmp_path: Path) -> None:
    with WorkerPool(2, max_growth_bytes=32 << 20) as pool:
        first = _pids(tmp_path, pool, 2)  # sets each worker's baseline
        pool.run([(_keep_memory, (16 << 20,)), (_keep_memory, (96 << 20,))])
        assert pool.retired == 1
        after = _pids(tmp_path, pool, 2)
        assert after[0] == first[0] and after[1] not in first  # only the grown worker was replaced
