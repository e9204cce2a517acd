"""Stopping a child process: a signal, a grace period, then SIGKILL.

    code = stop_process(proc)                                   # SIGTERM, 10 s, then SIGKILL
    code = stop_process(board, sig=signal.SIGINT, timeout=3.0)  # Ctrl-C

The one copy of "signal, wait, kill, wait" for the developer tools (the board simulator, the
benchmarks, the dev servers, the tests). It imports nothing else from Sen.

``STOP_SIGNALS`` are what a long-running command treats as "stop cleanly": Ctrl-C, SIGTERM, and
SIGHUP (its terminal closed, as when an ssh session to the Pi drops). ``die_with_parent()`` gives
the ``preexec_fn`` for children that must not outlive the process that started them even when it
is killed outright (Linux's parent-death signal; elsewhere it does nothing). Start such children
from the main thread: the signal follows the thread that forked them.

Importing this module loads neither ``ctypes`` nor ``subprocess`` (~5 ms of every ``sen`` command's
start, for the commands that start no child): ``die_with_parent()`` loads the C library in the
parent, since a ``preexec_fn`` runs after the fork and must not import.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


@cache
def die_with_parent() -> Callable[[], None] | None:
    """The ``preexec_fn`` by which a child gets SIGTERM when its parent dies, however it dies
    (Linux); None where the C library has no ``prctl``."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no C library or no prctl: the children only get the signals sent to them
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


def stop_process(proc: subprocess.Popen[Any], *, sig: int = signal.SIGTERM,
                 timeout: float = STOP_TIMEOUT_S) -> int:
    """Send ``sig`` to ``proc``, wait up to ``timeout`` seconds, SIGKILL it if it is still
    running, and reap it. Returns its exit code (negative: the signal that ended it).

    A process that has already exited gets no signal; it is only reaped.
    """
    from subprocess import TimeoutExpired

    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except TimeoutExpired:
        _LOGGER.warning("pid %d still running %.1f s after signal %d: killed", proc.pid, timeout, sig)
        proc.kill()
        return proc.wait()
