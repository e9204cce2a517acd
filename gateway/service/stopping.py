"""An event set when the process gets one of some signals, without a Python signal handler's
pitfalls.

    stop = stop_event((signal.SIGINT, signal.SIGTERM), on_signal=lambda signum: log.info(...))
    stop.wait()  # the main thread: returns once a signal came, whichever thread the kernel gave it to

A Python signal handler runs in the main thread, between two of its bytecodes. A signal the
kernel hands to another thread (it may: any thread that does not block it) only marks the handler
as due, and a main thread blocked in ``Event.wait()`` without a timeout never runs it: a gateway
sent SIGTERM just after its start ran on until it was killed 60 s later (seen once in a benchmark
run; a test reproduces it by sending the signal to another thread). And a handler that set the
event itself could run inside that event's own ``wait``, between taking its lock and blocking,
and wait for the lock forever.

So the signals have a handler that does nothing, and their number reaches a thread of its own
through ``signal.set_wakeup_fd``, which the C-level handler writes to at once, in whichever
thread took the signal; that thread sets the event (and calls ``on_signal``). Call from the main
thread (Python allows the wakeup fd to be set there only). A second call takes over: the first
event's thread ends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable

_current: list[int] = []  # the write end of the pipe the wakeup fd is, while one is ours


def stop_event(signals: Iterable[int], *, on_signal: Callable[[int], None] | None = None) -> threading.Event:
    """An event set (after ``on_signal(signum)``) when any of ``signals`` arrives."""
    wanted = frozenset(int(sig) for sig in signals)
    stop = threading.Event()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # set_wakeup_fd requires it: a signal never blocks on a full pipe

    def relay() -> None:
        try:
            while chunk := os.read(read_fd, 64):  # b"": the pipe's write end closed (a later call took over)
                for signum in chunk:
                    if signum in wanted:
                        if on_signal is not None:
                            on_signal(signum)
                        stop.set()
        finally:
            os.close(read_fd)

    threading.Thread(target=relay, name="sen-signals", daemon=True).start()
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)  # first: a signal between the two is not lost
    for sig in wanted:
        signal.signal(sig, _noted)
    if _current:
        os.close(_current.pop())
    _current.append(write_fd)
    return stop


def _noted(signum: int, frame: object) -> None:
    """The signals' Python handler: nothing to do, the wakeup fd carried the signal already."""
