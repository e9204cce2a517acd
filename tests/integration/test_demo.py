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
