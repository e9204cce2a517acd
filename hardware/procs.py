"""Stopping a child process: a signal, a grace period, then SIGKILL.

    code = stop_process(proc)                                   # SIGTERM, 10 s, then SIGKILL
    code = stop_process(board, sig=signal.SIGINT, timeout=3.0)  # Ctrl-C

The one copy of "signal, wait, kill, wait" for the developer tools (the board simulator, the
benchmarks, the dev servers, the tests). It imports nothing else from Sen.

``STOP_SIGNALS`` are what a long-running command treats as "stop cleanly": Ctrl-C, SIGTERM, and
SIGHUP (its terminal closed, as when an ssh session to the Pi drops). ``die_with_parent`` is a
``preexec_fn`` for children that must not outlive the process that started them even when it is
killed outright (Linux's parent-death signal; elsewhere it does nothing). Start such children
from the main thread: the signal follows the thread that forked them.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
from typing import Any

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # no C library to ask: the children only get the signals sent to them
    _LIBC = None


def die_with_parent() -> None:
    """``preexec_fn``: this child gets SIGTERM when its parent dies, however it dies (Linux)."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(proc: subprocess.Popen[Any], *, sig: int = signal.SIGTERM,
                 timeout: float = STOP_TIMEOUT_S) -> int:
    """Send ``sig`` to ``proc``, wait up to ``timeout`` seconds, SIGKILL it if it is still
    running, and reap it. Returns its exit code (negative: the signal that ended it).

    A process that has already exited gets no signal; it is only reaped.
    """
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _LOGGER.warning("pid %d still running %.1f s after signal %d: killed", proc.pid, timeout, sig)
        proc.kill()
        return proc.wait()
