"""Small helpers for the integration tests: run `sen` as a real process, poll with a timeout."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from hardware.procs import stop_process

T = TypeVar("T")


def sen_process(*args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `sen ARGS...` (as `python -m gateway`) with its output in LOG."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gateway", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def wait_for(probe: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call PROBE until it returns something truthy; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, *, timeout: float = 20) -> int:
    """Ask PROCESS to stop with SIG, kill it after TIMEOUT seconds; its exit code."""
    return stop_process(process, sig=sig, timeout=timeout)


def gateway_run(mqtt_url: str, influx_url: str, database: str, tmp_path: Path, client_id: str
                ) -> Iterator[subprocess.Popen[bytes]]:
    """A fixture's body: `sen gateway run` (spool and log under TMP_PATH), yielded once it has
    subscribed; it must then stop cleanly (exit 0) on SIGTERM."""
    log = tmp_path / "gateway.log"
    proc = sen_process("gateway", "run", "--mqtt", mqtt_url, "--influx", influx_url, "--database", database,
                       "--spool", str(tmp_path / "spool"), "--client-id", client_id, log=log)
    wait_for(lambda: "subscribed to sen/v1/+/+/telemetry" in log.read_text(), timeout=30,
             what="the gateway's subscription")
    yield proc
    assert stop(proc, timeout=30) == 0, log.read_text()
