"""hardware.procs: stop_process (signal, wait, kill, wait; the exit code either way) and
die_with_parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from gateway.devstack.process import _PORTS_FROM, _ephemeral_start, free_port
from hardware.procs import stop_process

# Prints "ready" once its signal handlers are set, so the test never signals it too early.
# SIGINT gets Python's own handler back: a process started under a non-interactive shell's
# background job (`./run.sh test &`) inherits SIGINT and SIGQUIT ignored, and Python then keeps
# SIGINT ignored (seen: SigIgn 0x1005006 in the child, SIGINT's bit set; the test failed so).
_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
mode = sys.argv[1]
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "exit3":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
print("ready", flush=True)
time.sleep(60)
"""

Spawn = Callable[[str], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(mode: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, mode], stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        return proc

    yield _spawn
    for proc in started:  # whatever a failed test left behind
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_process_that_obeys_stops_with_the_signal(spawn: Spawn) -> None:
    proc = spawn("plain")
    assert stop_process(proc, timeout=10) == -signal.SIGTERM
    assert proc.returncode == -signal.SIGTERM


def test_its_own_exit_code_is_returned(spawn: Spawn) -> None:
    assert stop_process(spawn("exit3"), timeout=10) == 3


def test_another_signal_can_be_sent(spawn: Spawn) -> None:
    # the child ignores SIGTERM only; an unhandled SIGINT ends a Python process with that signal
    proc = spawn("ignore")
    masks = _signal_masks(proc.pid)  # if it fails: was SIGINT (bit 2) blocked or ignored in the child?
    assert stop_process(proc, sig=signal.SIGINT, timeout=10) == -signal.SIGINT, masks


def _signal_masks(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        return " ".join(line.replace("\t", "") for line in status.read().splitlines() if line.startswith("Sig"))


def test_a_process_that_ignores_the_signal_is_killed_after_the_timeout(spawn: Spawn) -> None:
    proc = spawn("ignore")
    started = time.monotonic()
    assert stop_process(proc, timeout=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10


def test_a_process_that_already_exited_gets_no_signal_and_is_reaped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"], stdin=subprocess.DEVNULL)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    assert stop_process(proc, timeout=0.1) == 7


# Starts `sleep 60` with the parent-death signal set (or not, "free"), prints its pid, waits.
_PARENT = """
import subprocess, sys
from hardware.procs import die_with_parent
child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent() if sys.argv[1] == "bound" else None)
print(child.pid, flush=True)
sys.stdin.read()
"""


def _ended(pid: int) -> bool:
    """Gone, or a zombie no one has reaped yet (it ran to its end either way)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_child_started_with_die_with_parent_ends_when_its_parent_is_killed_outright() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, "bound"], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE)
    assert parent.stdout is not None and parent.stdin is not None
    child = int(parent.stdout.readline())
    try:
        assert not _ended(child)
        parent.kill()  # SIGKILL: no handler of the parent's runs
        parent.wait()
        deadline = time.monotonic() + 10
        while not _ended(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _ended(child), "the child outlived its parent"
    finally:
        if not _ended(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()
        parent.stdin.close()


def test_free_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    """A port from the kernel's ephemeral range can be taken as an outgoing connection's source
    port before the server binds it; one handed out twice would make two servers collide."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(_PORTS_FROM <= port < _ephemeral_start() for port in ports)
