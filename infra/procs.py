"""Child processes that cannot outlive the process that started them (Linux ``PR_SET_PDEATHSIG``)."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a child: have the kernel send ``sig`` when the parent dies; exit now if it already has.

    Call it first thing in a forked child, or as a ``subprocess.Popen(preexec_fn=...)`` (the setting
    survives ``exec``). The parent here is the thread that forked: start such children from the main
    thread.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))  # Linux: always present
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _glibc_function(name: str):
    """``name`` from glibc, or ``None`` where the C library is another one (no such symbol)."""
    return getattr(ctypes.CDLL(None), name, None)


def keep_freed_memory(
    mmap_threshold_bytes: int = 32 << 20, trim_threshold_bytes: int = 1 << 30, top_pad_bytes: int = 64 << 20
) -> bool:
    """glibc malloc: serve blocks below ``mmap_threshold_bytes`` from the heap and keep up to
    ``trim_threshold_bytes`` of freed heap instead of returning it to the kernel.

    A stream worker allocates and frees buffers of 0.1-16 MB all the time (Kafka fetches, pickled
    groups, stacked samples); by default each lands in fresh ``mmap``ed pages, and every first touch of
    a page is a page fault the kernel must serve: 530 k of them (2.3 s of system time) for the 100 MB
    bench input against 310 k (1.5 s) with these settings. The cost is memory the process keeps
    (bounded by its own peak; :func:`release_freed_memory` hands it back between tasks). Returns
    ``False`` where glibc's ``mallopt`` is not available.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, mmap_threshold_bytes),
            (_M_TRIM_THRESHOLD, trim_threshold_bytes),
            (_M_TOP_PAD, top_pad_bytes),
        )
    )


def release_freed_memory() -> bool:
    """Return freed memory to the kernel: pyarrow's memory pool (mimalloc/jemalloc keep freed pages
    for reuse) and glibc's heap (``malloc_trim(0)``). A long-lived worker calls it between tasks, so
    what one task freed does not stay resident through the next. ``False`` without glibc."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True
