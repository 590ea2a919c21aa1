"""A background thread that calls a function every ``period_s`` while a ``with`` block runs."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """``with Periodic(fn, period_s): ...`` calls ``fn()`` every ``period_s`` seconds in a daemon thread,
    and once more on exit (so the last state is seen)."""

    def __init__(self, fn: Callable[[], None], period_s: float):
        self.fn, self.period_s, self._stop = fn, period_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.fn()

    def __enter__(self) -> Periodic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.fn()
