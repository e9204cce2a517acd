"""`sen demo --duration S`: readings arrive in the live table, and nothing outlives the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.demo import query_hint
from gateway.devstack import InfluxDB

pytestmark = [pytest.mark.integration, pytest.mark.firmware, pytest.mark.slow]


def _processes_using(directory: Path) -> list[str]:
    """Command lines of live processes whose working directory or arguments mention DIRECTORY."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if str(directory) in cmdline or cwd.startswith(str(directory)):
            found.append(f"{pid}: {cmdline}")
    return found


def test_demo_shows_readings_and_stops_every_child(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--duration", "15", "--interval-ms", "500", "--dir", str(demo_dir)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    # The last table shows all three boards with points in InfluxDB.
    last_table = result.stdout.strip().split("\n\n")[-1]
    for device in ("sim-0000", "sim-0001", "sim-0002"):
        row = next((line for line in last_table.splitlines() if line.startswith(device)), None)
        assert row is not None, result.stdout[-2000:]
        assert int(row.split()[-1]) > 0
    summary = re.search(r"demo stopped: (\d+) points from 3 board\(s\)", result.stderr)
    assert summary and int(summary.group(1)) >= 3, result.stderr
    assert _processes_using(demo_dir) == []


@pytest.mark.integration
def test_the_query_line_the_demo_suggests_runs(influxdb: InfluxDB, influx_db: str) -> None:
    """The demo tells the user to run `influx ...`: set-up installs it, and the line works."""
    with urllib.request.urlopen(urllib.request.Request(
            f"{influxdb.url}/write?db={influx_db}&precision=ms",
            data=f"telemetry,device=d seq=1i {int(time.time() * 1000)}".encode(), method="POST"), timeout=10):
        pass
    result = subprocess.run(query_hint(influxdb.port, influx_db), capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "telemetry" in result.stdout and "seq" in result.stdout, result.stdout


def test_closing_the_demos_terminal_stops_everything_it_started(tmp_path: Path) -> None:
    """SIGHUP, as when the ssh session to the Pi drops: the demo, its broker, its InfluxDB, its
    gateway and its boards all end."""
    import pty
    import select

    demo_dir = tmp_path / "demo"
    pid, terminal = pty.fork()
    if pid == 0:  # the demo, in a new session whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "gateway", "demo", "--interval-ms", "500",
                                  "--dir", str(demo_dir)])
    seen = b""
    deadline = time.monotonic() + 90
    try:
        while b"sim-0000" not in seen and time.monotonic() < deadline:  # a board's reading in the table
            if select.select([terminal], [], [], 1.0)[0]:
                try:
                    seen += os.read(terminal, 65536)
                except OSError:
                    break
        assert b"sim-0000" in seen, seen[-2000:]
        started = _processes_using(demo_dir)
        assert len(started) >= 4, started  # mosquitto, influxd, the gateway, sen sim and its boards
    finally:
        os.close(terminal)  # the terminal closes: the kernel hangs up the demo's session
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) or os.WIFSIGNALED(status)
    deadline = time.monotonic() + 60
    while _processes_using(demo_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(demo_dir) == []
