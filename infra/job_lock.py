"""One running job per data directory and job kind: an exclusive ``flock`` on a lock file.

The kernel drops an ``flock`` when its holder dies (even by SIGKILL), so a crashed job never leaves a
stale lock behind, and nothing has to decide whether a recorded pid is still alive. The holder's pid
and start time are written into the file only so the refusal can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class JobLocked(RuntimeError):
    """Another process holds the lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("started_s", 0)))
    return f"pid {info.get('pid', '?')}, started {started}"


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, or raise :class:`JobLocked` at once.

    ``what``: the job and its data dir, for the message (``"a stream job on data dir /x"``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLocked(
                f"{what} is already running ({_holder(path)}; lock {path}): "
                "stop it first, or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started_s": time.time()}).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock (forked children sharing the descriptor release it on exit)
