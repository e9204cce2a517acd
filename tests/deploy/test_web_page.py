"""The built-in web page, with readings written into a real InfluxDB, checked in headless Chromium:
the JSON endpoints, then the screenshot's pixels (two sensors in two colours, a gap at the outage,
a reading without a sensor tag still drawn)."""

from __future__ import annotations

import html.parser
import json
import os
import re
import select
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
    registry = [{"site": "farm", "device": "esp32-aa01", "state": "online", "gaps": [[5, 6]], "ver": "1.4.0",
                 "ota": {"st": "recv", "ver": "1.5.0", "at": 40960, "of": 141603}},
                {"site": "farm", "device": "esp32-aa02", "ver": "1.5.0", "ota": {"st": "done", "ver": "1.5.0"}}]
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
    # each board's version, and the update under way on one of them
    assert "<td>1.4.0 → 1.5.0: receiving 28%</td>" in dom.stdout and "<td>1.5.0</td>" in dom.stdout
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


# --- the page in English and Vietnamese (static/i18n.js) --------------------------------------------

I18N_JS = STATIC_DIR / "i18n.js"
# Strings the two tables may share (units, names that are the same in both languages).
SAME_IN_EVERY_LANGUAGE: set[str] = set()
# Literals of app.js that are code (CSS classes), though they read like English words.
CODE_WORDS = {"sensors", "done"}  # a class name; an OTA state of the status (DESIGN.md, OTA)
# Literals of app.js with a space that are code, not text: CSS selectors and class lists.
CODE_PHRASES = {"use strict", "#devices tbody", "#lang button", "plot empty"}


def _i18n() -> dict[str, dict[str, str]]:
    """The tables of i18n.js: strict JSON between `const I18N =` and the line `};`."""
    found = re.search(r"^const I18N = (\{.*?^\});$", I18N_JS.read_text(), re.S | re.M)
    assert found, "i18n.js must hold `const I18N = {...};`"
    tables: dict[str, dict[str, str]] = json.loads(found.group(1))
    return tables


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_every_english_string_has_its_vietnamese_one() -> None:
    from gateway.web.server import LANGUAGES

    tables = _i18n()
    assert tuple(tables) == LANGUAGES == ("en", "vi")
    en, vi = tables["en"], tables["vi"]
    assert sorted(en) == sorted(vi), f"only in en: {sorted(set(en) - set(vi))}, only in vi: {sorted(set(vi) - set(en))}"
    assert (en["locale"], vi["locale"]) == ("en-US", "vi-VN")
    for key, text in en.items():
        assert isinstance(text, str) and text.strip() and isinstance(vi[key], str) and vi[key].strip(), key
        assert _placeholders(text) == _placeholders(vi[key]), f"{key}: placeholders differ"
        if key != "locale" and text not in SAME_IN_EVERY_LANGUAGE:
            assert vi[key] != text, f"{key}: {text!r} is not translated"
    # Vietnamese with its diacritics, not ASCII stand-ins
    assert "thiết bị" in vi["page.title"] and "độ ẩm đất" == vi["metric.moisture_pct"]
    marks = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệịỉĩọỏốồổỗộớờởỡợụủứừửữựỳỷỹý]")
    assert sum(1 for text in vi.values() if marks.search(text)) > len(vi) // 2


class _Texts(html.parser.HTMLParser):
    """index.html's text nodes and i18n keys."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.keys: list[str] = []
        self.attrs_with_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("data-i18n", "data-i18n-aria-label") and value:
                self.keys.append(value)
            if name in ("title", "aria-label", "placeholder", "alt") and value:
                self.attrs_with_text.append(f"<{tag} {name}={value!r}>")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


def _js_literals(src: str) -> list[str]:
    """The string literals of a script and the text parts of its template literals (a ${...}
    becomes \\0, its expression is scanned too), comments and regular expressions skipped."""
    found: list[str] = []

    def code(i: int, stop: str | None) -> int:
        depth, prev = 0, "("
        while i < len(src):
            c = src[i]
            if src.startswith("//", i):
                i = src.index("\n", i)
            elif src.startswith("/*", i):
                i = src.index("*/", i) + 2
            elif c in "\"'":
                j = i + 1
                while src[j] != c:
                    j += 2 if src[j] == "\\" else 1
                found.append(src[i + 1:j])
                i, prev = j + 1, c
            elif c == "`":
                i, prev = template(i + 1), c
            elif c == "/" and prev in "(,=:[!&|?{};":
                j, in_class = i + 1, False
                while in_class or src[j] != "/":
                    in_class = (in_class or src[j] == "[") and src[j] != "]"
                    j += 2 if src[j] == "\\" else 1
                i, prev = j + 1, "/"
            else:
                if c == "{":
                    depth += 1
                elif c == "}":
                    if stop and depth == 0:
                        return i + 1
                    depth -= 1
                if not c.isspace():
                    prev = c
                i += 1
        return i

    def template(i: int) -> int:
        parts = []
        while src[i] != "`":
            if src.startswith("${", i):
                parts.append("\0")
                i = code(i + 2, "}")
            else:
                parts.append(src[i + 1] if src[i] == "\\" else src[i])
                i += 2 if src[i] == "\\" else 1
        found.append("".join(parts))
        return i + 1

    code(0, None)
    return found


def test_no_user_visible_english_outside_the_table() -> None:
    tables = _i18n()
    english = {text.lower() for text in tables["en"].values()}
    page = _Texts()
    page.feed((STATIC_DIR / "index.html").read_text())
    assert set(page.texts) <= {"Sen", "EN", "VI"}, f"text in index.html outside i18n.js: {page.texts}"
    assert page.attrs_with_text == [], "use data-i18n-aria-label (and the like), not text in attributes"
    assert page.keys and set(page.keys) <= set(tables["en"]), sorted(set(page.keys) - set(tables["en"]))

    script = (STATIC_DIR / "app.js").read_text()
    literals = _js_literals(script)
    assert "#devices tbody" in literals and " — " in literals  # the scanner sees strings and templates
    for literal in literals:
        text = literal.replace("\0", "").strip()
        if not re.search(r"[A-Za-z]{2}", text) or re.fullmatch(r"#[0-9a-f]{6}", text):
            continue  # no words: punctuation, units, colours
        assert text.lower() not in english or text in CODE_WORDS, f"app.js shows {literal!r}: put it in i18n.js"
        if re.search(r"\s", text):
            assert text in CODE_PHRASES, f"app.js has the text {literal!r}: put it in i18n.js and use t()"
    used = set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", script))
    assert used and used <= set(tables["en"]), sorted(used - set(tables["en"]))


def test_the_page_language_follows_accept_language() -> None:
    from gateway.web.server import pick_language

    for header, lang in ((None, "en"), ("", "en"), ("vi", "vi"), ("vi-VN,vi;q=0.9,en-US;q=0.8", "vi"),
                         ("en-US,en;q=0.9,vi;q=0.8", "en"), ("fr-FR,vi;q=0.5", "vi"), ("vi;q=0", "en"),
                         ("de", "en"), ("*", "en"), ("vi;q=bad,en", "en")):
        assert pick_language(header) == lang, header
    server = WebServer("127.0.0.1", free_port(), lambda: [], lambda q: {"results": [{}]}).start()
    try:
        for header, lang in (("vi-VN,vi;q=0.9", "vi"), ("en-GB", "en")):
            request = urllib.request.Request(f"{server.url}/", headers={"Accept-Language": header})
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read().decode()
                assert response.headers["Content-Language"] == lang
                assert "Accept-Language" in response.headers["Vary"]
            assert f'<html lang="{lang}">' in body
        status, ctype, body = _get(f"{server.url}/i18n.js")
        assert (status, ctype) == (200, "text/javascript; charset=utf-8") and b"const I18N" in body
    finally:
        server.stop()


@pytest.mark.slow
def test_page_in_vietnamese_in_chromium(page: str, tmp_path: Path) -> None:
    """A browser that asks for Vietnamese gets the page in Vietnamese: headings and states from the
    table, numbers with a decimal comma (23,9 °C), a 24-hour clock; the charts draw as in English."""
    vi = ("--lang=vi", "--accept-lang=vi-VN,vi")
    dom = _chromium(tmp_path, *vi, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert '<html lang="vi">' in text and '<title data-i18n="page.title">Sen — thiết bị</title>' in text
    assert '<small data-i18n="heading.sub">thiết bị và số đo</small>' in text
    assert '<th data-i18n="col.sensors">cảm biến</th>' in text and '<th data-i18n="col.last">lần đo cuối</th>' in text
    assert re.search(r"3 thiết bị · cập nhật lúc ([01]\d|2[0-3]):[0-5]\d:[0-5]\d<", text), text[-3000:]
    assert '<td class="online">trực tuyến</td>' in text and "giây trước</td>" in text
    assert re.search(r"dht20 2\d,\d+ °C", text) and re.search(r"sim-0000 2\d,\d+ °C", text), text[-3000:]
    assert not re.search(r"dht20 2\d\.\d+ °C", text)
    assert '<td class="num">41.000</td>' in text  # heap free, grouped with a dot in Vietnamese
    assert len(re.findall(r'<td class="u-value">2\d(?:,\d+)? °C</td>', text)) == 4, text[-3000:]
    assert '<option value="temp_c">nhiệt độ — temp_c (°C)</option>' in text
    assert '<button type="button" data-lang="vi" lang="vi" aria-pressed="true" title="Tiếng Việt">VI</button>' in text
    for english in (">devices and readings<", ">sensors<", ">online<", " s ago<", "devices · updated"):
        assert english not in text, english

    shot = tmp_path / "page-vi.png"
    result = _chromium(tmp_path, *vi, f"--screenshot={shot}", page)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    if os.environ.get("SEN_WEB_SHOTS"):  # to look at it: SEN_WEB_SHOTS=DIR pytest ...
        shutil.copy(shot, Path(os.environ["SEN_WEB_SHOTS"]) / shot.name)
    with Image.open(shot) as opened:
        image = opened.convert("RGB")
    assert image.size == (1280, 900) and len(image.getcolors(1 << 24) or []) > 20, "the screenshot is blank"
    box = _plot_boxes(text)["farm/esp32-aa01"]
    colours = {n for n, cols in _colour_columns(image, box).items() if sum(cols.values()) > 150}
    assert len(colours) == 2, f"expected the SHT31 and the DHT20 lines in {box} ({shot})"


class _DevTools:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out; NUL-ended JSON)."""

    def __init__(self, tmp: Path, *flags: str) -> None:
        tool = shutil.which("chromium") or shutil.which("chromium-browser")
        if tool is None:
            pytest.fail("chromium missing: ./run.sh setup installs Debian's chromium")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def plumb() -> None:  # in the child: its fd 3 reads our commands, its fd 4 writes answers
            a, b = os.dup(to_browser), os.dup(from_browser)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._proc = subprocess.Popen(
            [tool, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp / 'profile-cdp'}", "--window-size=1280,900",
             "--remote-debugging-pipe", *flags, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=plumb, close_fds=False)  # dup2 to fds 3 and 4 before exec: the pipe protocol
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._read], [], [], max(0.0, left))
                chunk = os.read(self._read, 1 << 16) if ready else b""
                assert chunk, f"no answer from Chromium to {method}"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                result: dict[str, Any] = answer["result"]
                return result

    def js(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.js(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.2)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        finally:
            self._proc.wait(timeout=20)
            os.close(self._write)
            os.close(self._read)


@pytest.mark.slow
def test_the_language_switch_is_remembered(page: str, tmp_path: Path) -> None:
    """An English browser gets English; VI switches the page at once and is kept (localStorage)
    across a reload, though the browser still asks for English; EN switches back."""
    browser = _DevTools(tmp_path, "--accept-lang=en-US,en")
    try:
        status = "(document.querySelector('#status')?.textContent ?? '')"
        browser.call("Page.navigate", session=True, url=page)
        assert "devices · updated" in browser.wait_for(f"{status}.includes('devices') && {status}")
        assert browser.js("document.documentElement.lang") == "en"
        assert browser.js("document.querySelector('th[data-i18n=\"col.sensors\"]').textContent") == "sensors"
        browser.js("document.querySelector('#lang button[data-lang=vi]').click()")
        assert "cập nhật lúc" in browser.wait_for(f"{status}.includes('thiết bị') && {status}")
        assert browser.js("localStorage.getItem('sen.lang')") == "vi"
        assert browser.js("document.querySelector('th[data-i18n=\"col.sensors\"]').textContent") == "cảm biến"
        assert re.search(r"2\d,\d+ °C", browser.wait_for("document.querySelector('td.sensors').textContent"))

        browser.call("Page.reload", session=True)
        browser.wait_for(f"{status}.includes('thiết bị')")  # remembered, though the browser asks for English
        assert browser.js("document.documentElement.lang") == "vi"
        assert browser.js("document.querySelector('#lang button[data-lang=vi]').getAttribute('aria-pressed')") == "true"
        browser.js("document.querySelector('#lang button[data-lang=en]').click()")
        browser.wait_for(f"{status}.includes('devices')")
        assert browser.js("localStorage.getItem('sen.lang')") == "en"
        assert re.search(r"2\d\.\d+ °C", browser.js("document.querySelector('td.sensors').textContent"))
    finally:
        browser.close()
