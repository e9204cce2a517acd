"""The built-in web page, with devices written into a real InfluxDB, checked in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from gateway.devstack import InfluxDB, free_port
from gateway.web.server import WebServer, influx_query

pytestmark = pytest.mark.integration
LINE_RGB = (0xE4, 0x57, 0x2E)  # app.js's chart colour
DEVICES = [("farm", "esp32-aa01", "yolo-uno"), ("farm", "esp32-aa02", "esp32-devkitc"), ("lab", "sim-0000", "sim")]


def _write(influxdb: InfluxDB, db: str, lines: list[str]) -> None:
    request = urllib.request.Request(f"{influxdb.url}/write?db={db}&precision=ms", data="\n".join(lines).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


@pytest.fixture
def page(influxdb: InfluxDB, influx_db: str) -> Iterator[str]:
    now = time.time_ns() // 1_000_000
    lines = []
    for n, (site, device, board) in enumerate(DEVICES):
        for i in range(30):
            ts = now - (30 - i) * 20_000
            lines.append(f"telemetry,board={board},device={device},site={site} "
                         f"temp_c={20 + n + (i % 7) * 0.4},rh_pct={50 + i % 5}.5,seq={i + 1}i,boot=3i {ts}")
        lines.append(f"device_diag,device={device},site={site} rssi_dbm={-60 - n}i,heap_free={41000 + n}i,"
                     f"outbox={n}i,dropped=0i {now - 1000}")
    _write(influxdb, influx_db, lines)
    registry = [{"site": "farm", "device": "esp32-aa01", "state": "online", "gaps": [[5, 6]]}]
    server = WebServer("127.0.0.1", free_port(), lambda: registry, influx_query(influxdb.url, influx_db)).start()
    yield server.url
    server.stop()


def test_json_endpoints(page: str) -> None:
    with urllib.request.urlopen(f"{page}/api/devices", timeout=10) as response:
        devices = json.loads(response.read())
    assert [(d["site"], d["device"], d["board"]) for d in devices] == sorted(DEVICES)
    first = devices[0]
    assert first["state"] == "online" and first["gaps"] == [[5, 6]] and first["rssi_dbm"] == -60
    assert first["seq"] == 30 and first["heap_free"] == 41000
    with urllib.request.urlopen(f"{page}/api/series?site=lab&device=sim-0000&minutes=60", timeout=10) as response:
        series = json.loads(response.read())
    assert series["metrics"] == ["rh_pct", "temp_c"] and len(series["points"]) == 30
    assert series["points"][0]["time"] < series["points"][-1]["time"]
    for bad in ("site=lab&device=x'%20OR%20'1", "site=LAB&device=a"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{page}/api/series?{bad}", timeout=10)
        assert refused.value.code == 400
        refused.value.close()


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("chromium") or shutil.which("chromium-browser")
    if tool is None:
        pytest.fail("chromium missing: ./run.sh setup installs Debian's chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars",
             "--window-size=1280,900", "--virtual-time-budget=8000"]
    return subprocess.run([tool, *flags, *args], capture_output=True, text=True, timeout=90, cwd=tmp)


@pytest.mark.slow
def test_page_renders_table_and_charts_in_chromium(page: str, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for site, device, board in DEVICES:
        assert f"<td>{device}</td>" in dom.stdout and f"<td>{board}</td>" in dom.stdout
    assert dom.stdout.count("<polyline") == len(DEVICES), dom.stdout[-3000:]
    assert "3 devices" in dom.stdout
    shot = tmp_path / "page.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", page)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        raw = image.convert("RGB").tobytes()
    pixels = [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    assert len(set(pixels)) > 20, "the screenshot is blank"
    near = sum(1 for p in pixels if all(abs(a - b) <= 12 for a, b in zip(p, LINE_RGB)))
    assert near > 300, f"only {near} pixels in the chart colour: no chart drawn"
