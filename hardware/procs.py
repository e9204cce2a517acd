"""Stopping a child process: a signal, a grace period, then SIGKILL.

    code = stop_process(proc)                                   # SIGTERM, 10 s, then SIGKILL
    code = stop_process(board, sig=signal.SIGINT, timeout=3.0)  # Ctrl-C

The one copy of "signal, wait, kill, wait" for the developer tools (the board simulator, the
benchmarks, the dev servers, the tests). It imports nothing else from Sen.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from typing import Any

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


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
