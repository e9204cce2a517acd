"""The built-in web page, with readings written into a real InfluxDB, checked in headless Chromium:
the JSON endpoints, then the screenshot's pixels (two sensors in two colours, a gap at the outage,
a reading without a sensor tag still drawn)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gateway.devstack import InfluxDB, free_port
from gateway.web.queries import unit_of, with_gaps
from gateway.web.server import STATIC_DIR, WebServer, influx_query

pytestmark = pytest.mark.integration
PALETTE = [tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
           for h in re.findall(r'"(#[0-9a-f]{6})"', re.search(r"const PALETTE = \[(.*?)\]",
                                                          (STATIC_DIR / "app.js").read_text()).group(1))]
DEVICES = [("farm", "esp32-aa01", "yolo-uno"), ("farm", "esp32-aa02", "esp32-devkitc"), ("lab", "sim-0000", "sim")]
STEP_MS = 10_000
OUTAGE_MIN = (9, 4)  # esp32-aa01 is silent from 9 to 4 minutes ago


def _write(influxdb: InfluxDB, db: str, lines: list[str]) -> None:
    request = urllib.request.Request(f"{influxdb.url}/write?db={db}&precision=ms", data="\n".join(lines).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def _readings(now: int) -> list[str]:
    """aa01: an SHT31 (~21 °C) and a DHT20 (~24 °C), 3 s apart, with an outage; aa02: a BME280;
    sim-0000: older firmware, readings without a sensor tag."""
    lines, seq = [], {d: 0 for _, d, _ in DEVICES}

    def reading(site: str, device: str, board: str, sensor: str | None, fields: str, ts: int) -> None:
        seq[device] += 1
        tags = f"board={board},device={device}" + (f",sensor={sensor}" if sensor else "") + f",site={site}"
        lines.append(f"telemetry,{tags} {fields},seq={seq[device]}i,boot=3i {ts}")

    for i in range(14 * 60_000 // STEP_MS, 0, -1):
        ts = now - i * STEP_MS
        wave = (i % 7) * 0.1
        if not OUTAGE_MIN[1] * 60_000 < now - ts < OUTAGE_MIN[0] * 60_000:
            reading("farm", "esp32-aa01", "yolo-uno", "sht31", f"temp_c={21 + wave:.2f},rh_pct=55.5", ts)
            reading("farm", "esp32-aa01", "yolo-uno", "dht20", f"temp_c={24 - wave:.2f},rh_pct=48.0", ts + 3000)
        reading("farm", "esp32-aa02", "esp32-devkitc", "bme280", f"temp_c={22 + wave:.2f},p_hpa=1013.25", ts + 1000)
        reading("lab", "sim-0000", "sim", None, f"temp_c={20 + wave:.2f},rh_pct=50.5", ts + 2000)
    for n, (site, device, _board) in enumerate(DEVICES):
        lines.append(f"device_diag,device={device},site={site} rssi_dbm={-60 - n}i,heap_free={41000 + n}i,"
                     f"outbox={n}i,dropped=0i {now - 1000}")
    return lines


@pytest.fixture
def page(influxdb: InfluxDB, influx_db: str) -> Iterator[str]:
    _write(influxdb, influx_db, _readings(time.time_ns() // 1_000_000))
    registry = [{"site": "farm", "device": "esp32-aa01", "state": "online", "gaps": [[5, 6]]}]
    server = WebServer("127.0.0.1", free_port(), lambda: registry, influx_query(influxdb.url, influx_db)).start()
    yield server.url
    server.stop()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read()


def _json(url: str) -> Any:
    status, ctype, body = _get(url)
    assert status == 200 and ctype == "application/json", body
    return json.loads(body)


def test_units_and_gaps() -> None:
    assert [unit_of(m) for m in ("temp_c", "rh_pct", "p_hpa", "vbat_v", "level_cm", "lux", "amb_lux", "co2_ppm")] \
        == ["°C", "%", "hPa", "V", "cm", "lx", "lx", ""]
    points: list[tuple[int, float | None]] = [(t, 1.0) for t in (0, 10, 20, 30, 200, 210, 220)]
    assert with_gaps(points) == [*points[:4], (115, None), *points[4:]]
    assert with_gaps(points[:4]) == points[:4] and with_gaps(points[:2]) == points[:2]


def test_json_endpoints(page: str) -> None:
    devices = _json(f"{page}/api/devices")
    assert [(d["site"], d["device"], d["board"]) for d in devices] == sorted(DEVICES)
    first = devices[0]
    assert first["state"] == "online" and first["gaps"] == [[5, 6]] and first["rssi_dbm"] == -60
    assert first["heap_free"] == 41000 and devices[2]["seq"] == 14 * 60_000 // STEP_MS
    assert [(s["sensor"], s["label"]) for s in first["sensors"]] == [("dht20", "dht20"), ("sht31", "sht31")]
    assert first["sensors"][1]["values"]["rh_pct"] == 55.5 and 21 <= first["sensors"][1]["values"]["temp_c"] < 22
    assert [(s["sensor"], s["label"]) for s in devices[2]["sensors"]] == [(None, "sim-0000")]

    assert _json(f"{page}/api/metrics")["metrics"] == [
        {"name": "p_hpa", "unit": "hPa"}, {"name": "rh_pct", "unit": "%"}, {"name": "temp_c", "unit": "°C"}]

    answer = _json(f"{page}/api/series?metric=temp_c&minutes=15")
    assert answer["unit"] == "°C" and answer["to_ms"] - answer["from_ms"] == 15 * 60_000
    lines = {(line["device"], line["label"]): line for line in answer["lines"]}
    assert sorted(lines) == [("esp32-aa01", "dht20"), ("esp32-aa01", "sht31"), ("esp32-aa02", "bme280"),
                             ("sim-0000", "sim-0000")]
    assert lines[("sim-0000", "sim-0000")]["sensor"] is None
    for key, line in lines.items():
        times = [t for t, _v in line["points"]]
        assert times == sorted(times), key
        nulls = [t for t, v in line["points"] if v is None]
        if key[0] == "esp32-aa01":  # one gap, inside the outage
            assert len(nulls) == 1 and answer["to_ms"] - 9 * 60_000 < nulls[0] < answer["to_ms"] - 4 * 60_000
        else:
            assert nulls == [], key
    assert all(21 <= v < 22 for _t, v in lines[("esp32-aa01", "sht31")]["points"] if v is not None)
    one = _json(f"{page}/api/series?metric=p_hpa&minutes=60&site=farm&device=esp32-aa02")
    assert [(line["device"], line["sensor"]) for line in one["lines"]] == [("esp32-aa02", "bme280")]
    assert one["unit"] == "hPa" and {v for _t, v in one["lines"][0]["points"]} == {1013.25}


@pytest.mark.parametrize(("query", "says"), [
    ("metric=nope", "unknown metric"),
    ("metric=seq", "unknown metric"),
    ("metric=" + urllib.parse.quote('temp_c" OR 1=1'), "bad metric"),
    ("metric=" + urllib.parse.quote("temp_c\") FROM telemetry; DROP DATABASE x; --"), "bad metric"),
    ("minutes=15", "'metric' is required"),
    ("metric=temp_c&minutes=abc", "bad minutes"),
    ("metric=temp_c&minutes=0", "bad minutes"),
    ("metric=temp_c&site=" + urllib.parse.quote("x' OR '1'='1"), "bad site"),
    ("metric=temp_c&device=LAB", "bad device"),
    ("metric=temp_c&metric=rh_pct", "given 2 times"),
    ("metric=temp_c&where=1", "unknown parameter"),
])
def test_bad_parameters_are_refused(page: str, query: str, says: str) -> None:
    status, ctype, body = _get(f"{page}/api/series?{query}")
    assert status == 400 and ctype == "application/json"
    assert says in json.loads(body)["error"]


def test_static_files_and_their_types(page: str) -> None:
    for path, ctype, starts in (("/", "text/html", b"<!doctype html>"), ("/app.js", "text/javascript", b"//"),
                                ("/style.css", "text/css", b"body"),
                                ("/vendor/uPlot.iife.min.js", "text/javascript", b"/*! https://github.com/leeoniya/uPlot"),
                                ("/vendor/uPlot.min.css", "text/css", b".uplot")):
        status, got, body = _get(f"{page}{path}")
        assert (status, got, body[:len(starts)]) == (200, f"{ctype}; charset=utf-8", starts), path
    html = _get(f"{page}/")[2].decode()
    assert "http://" not in html and "https://" not in html  # nothing from the internet
    for path in ("/vendor/LICENSE", "/vendor/../server.py", "/../queries.py", "/api/nope"):
        assert _get(f"{page}{path}")[0] == 404, path


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("chromium") or shutil.which("chromium-browser")
    if tool is None:
        pytest.fail("chromium missing: ./run.sh setup installs Debian's chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars",
             "--force-device-scale-factor=1", "--window-size=1280,900", "--virtual-time-budget=8000"]
    return subprocess.run([tool, *flags, *args], capture_output=True, text=True, timeout=90, cwd=tmp)


def _plot_boxes(dom: str) -> dict[str, tuple[int, int, int, int]]:
    """device -> its chart's plot area (x, y, w, h) in CSS px, as app.js marks it on the figure."""
    boxes = {}
    for tag in re.findall(r"<figure[^>]*>", dom):
        device, plot = re.search(r'data-device="([^"]+)"', tag), re.search(r'data-plot="([^"]+)"', tag)
        if device and plot:
            x, y, w, h = (int(v) for v in plot.group(1).split(","))
            boxes[device.group(1)] = (x, y, w, h)
    return boxes


def _near(pixel: bytes, colour: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= 30 for a, b in zip(pixel, colour, strict=True))


def _colour_columns(image: Image.Image, box: tuple[int, int, int, int]) -> dict[int, dict[int, int]]:
    """palette index -> {column: line pixels of that colour in the column}, inside ``box``."""
    x0, y0, w, h = box
    crop = image.crop((x0, y0, x0 + w, y0 + h))
    raw = crop.tobytes()
    found: dict[int, dict[int, int]] = {}
    for i in range(0, len(raw), 3):
        pixel = raw[i:i + 3]
        for n, colour in enumerate(PALETTE):
            if _near(pixel, colour):
                column = (i // 3) % w
                found.setdefault(n, {})[column] = found.get(n, {}).get(column, 0) + 1
                break
    return found


def _runs(columns: set[int]) -> list[tuple[int, int]]:
    """Column ranges with line pixels, joining breaks of up to 3 px (anti-aliasing)."""
    runs: list[tuple[int, int]] = []
    for c in sorted(columns):
        if runs and c - runs[-1][1] <= 4:
            runs[-1] = (runs[-1][0], c)
        else:
            runs.append((c, c))
    return runs


@pytest.mark.slow
def test_page_draws_a_line_per_sensor_with_a_gap_in_chromium(page: str, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for _site, device, board in DEVICES:
        assert f"<td>{device}</td>" in dom.stdout and f"<td>{board}</td>" in dom.stdout
    assert "3 devices" in dom.stdout and "error:" not in dom.stdout
    assert re.search(r"dht20 2\d(\.\d+)? °C", dom.stdout) and re.search(r"sim-0000 2\d(\.\d+)? °C", dom.stdout)
    boxes = _plot_boxes(dom.stdout)
    assert sorted(boxes) == sorted(f"{s}/{d}" for s, d, _ in DEVICES), dom.stdout[-3000:]
    for label in ("sht31", "dht20", "bme280", "sim-0000"):
        assert f'<div class="u-label">{label}</div>' in dom.stdout, label
    # the legend (it reads the values under the cursor) shows each line's latest value with its unit
    assert len(re.findall(r'<td class="u-value">2\d(?:\.\d+)? °C</td>', dom.stdout)) == 4, dom.stdout[-3000:]

    shot = tmp_path / "page.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", page)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as opened:
        image = opened.convert("RGB")
    assert image.size == (1280, 900) and len(image.getcolors(1 << 24) or []) > 20, "the screenshot is blank"

    # esp32-aa01: two lines in two colours, each two stretches with empty columns between them (the
    # outage), each thin (a line, not the zig-zag of two chips in one series: a solid block).
    box = boxes["farm/esp32-aa01"]
    assert box[2] > 250 and box[3] > 100 and box[0] + box[2] <= 1280 and box[1] + box[3] <= 900, box
    colours = {n: cols for n, cols in _colour_columns(image, box).items() if sum(cols.values()) > 150}
    assert len(colours) == 2, f"expected two line colours in {box}, found {sorted(colours)} ({shot})"
    outage_px = (OUTAGE_MIN[0] - OUTAGE_MIN[1]) / 15 * box[2]
    for n, cols in colours.items():
        runs = [r for r in _runs(set(cols)) if r[1] - r[0] >= 20]
        assert len(runs) == 2, f"colour {PALETTE[n]}: line stretches {runs}, want two around the gap ({shot})"
        gap = runs[1][0] - runs[0][1]
        assert 0.6 * outage_px < gap < 1.2 * outage_px, f"gap of {gap} px for a {outage_px:.0f} px outage ({shot})"
        heights = sorted(cols.values())
        assert heights[len(heights) // 2] <= 6, f"colour {PALETTE[n]} is a block, not a line ({shot})"
    # the SHT31 (21 °C) and the DHT20 (24 °C) far apart, not interleaved
    rows = {n: _mean_row(image, box, PALETTE[n]) for n in colours}
    assert abs(rows[min(rows)] - rows[max(rows)]) > box[3] / 4

    # sim-0000's readings carry no sensor tag: still one line, unbroken
    untagged = {n: cols for n, cols in _colour_columns(image, boxes["lab/sim-0000"]).items()
                if sum(cols.values()) > 150}
    assert len(untagged) == 1, f"the reading without a sensor tag is not drawn ({shot})"
    assert len([r for r in _runs(set(next(iter(untagged.values())))) if r[1] - r[0] >= 20]) == 1


def _mean_row(image: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, ...]) -> float:
    """The mean row (px from the plot's top) of the pixels of ``colour`` inside ``box``."""
    x0, y0, w, h = box
    raw = image.crop((x0, y0, x0 + w, y0 + h)).tobytes()
    rows = [i // 3 // w for i in range(0, len(raw), 3) if _near(raw[i:i + 3], colour)]
    return sum(rows) / len(rows)
