"""gateway.service.stopping.stop_event (and `stop_on_signals`, the commands' use of it): the event
is set whichever thread the kernel hands the signal to, and a later call takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from gateway.service.stopping import stop_event

# The main thread waits without a timeout, as `sen gateway run` does; the signal goes to another
# thread, as the kernel may send it to any thread that does not block it.
_CHILD = """
import logging, signal, sys, threading
from gateway.cli.args import stop_on_signals
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
stop = stop_on_signals(logging.getLogger("t"))
where = sys.argv[1]
def send():
    target = threading.get_ident() if where == "thread" else threading.main_thread().ident
    signal.pthread_kill(target, signal.SIGTERM)
threading.Timer(0.1, send).start()
stop.wait()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("where", ["thread", "main"])
def test_the_main_thread_waiting_without_a_timeout_stops_whichever_thread_takes_the_signal(where: str) -> None:
    # Before stop_event a signal taken by another thread left the main thread waiting for good.
    done = subprocess.run([sys.executable, "-c", _CHILD, where], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["SIGTERM received: flushing and stopping", "stopped"]


def test_a_later_call_takes_over_and_the_earlier_relay_ends() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    try:
        first = stop_event([signal.SIGUSR1])
        relays = [t for t in threading.enumerate() if t.name == "sen-signals"]
        second = stop_event([signal.SIGUSR1])
        for relay in relays:
            relay.join(timeout=10)
            assert not relay.is_alive(), "the first call's thread still reads its pipe"
        os.kill(os.getpid(), signal.SIGUSR1)
        assert second.wait(timeout=10)
        assert not first.is_set()
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGUSR1, before)
