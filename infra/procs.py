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
