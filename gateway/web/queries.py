"""The web page's data: InfluxQL against measurement ``telemetry`` (DESIGN.md, InfluxDB schema), and
the answers shaped for the page.

Nothing from a request is pasted into InfluxQL unchecked: a site or device must match
``[a-z0-9_-]{1,32}``, a metric ``[a-z][a-z0-9_]{0,63}`` *and* be one of the field keys InfluxDB
has for ``telemetry``; anything else is a :class:`BadRequest` (HTTP 400).

A chart line is one (site, device, sensor); readings without a ``sensor`` tag (older firmware) are
one line named for the device. Where a line has no reading for more than ``GAP_FACTOR`` of its
typical interval, a null point is put in, so the chart breaks there instead of drawing a straight
line across the outage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any

from gateway.errors import GatewayError

Devices = Callable[[], list[dict[str, Any]]]
QueryInflux = Callable[[str], dict[str, Any]]
Point = tuple[int, float | None]

NAME = re.compile(r"[a-z0-9_-]{1,32}")
METRIC = re.compile(r"[a-z][a-z0-9_]{0,63}")
NOT_METRICS = frozenset({"seq", "boot"})
GAP_FACTOR = 3  # no reading for more than this many typical intervals: a gap
MAX_POINTS = 720  # per line; longer windows are averaged into buckets
MAX_MINUTES = 24 * 60
_DIAG = ("rssi_dbm", "heap_free", "outbox", "dropped")
_LOOKBACK = "7d"
_UNITS = (("_c", "°C"), ("_pct", "%"), ("_hpa", "hPa"), ("_v", "V"), ("_cm", "cm"), ("_lux", "lx"))
_SERIES_PARAMS = frozenset({"metric", "minutes", "site", "device"})


class WebError(GatewayError):
    """The web page's data source failed."""


class BadRequest(GatewayError, ValueError):
    """A request the page refuses (HTTP 400): a bad or unknown parameter."""


def unit_of(metric: str) -> str:
    """The unit a metric's name carries: ``temp_c`` -> °C, ``rh_pct`` -> %, ``lux`` -> lx; else ""."""
    if metric == "lux":
        return "lx"
    return next((unit for suffix, unit in _UNITS if metric.endswith(suffix)), "")


def _series(answer: dict[str, Any]) -> list[dict[str, Any]]:
    results = answer.get("results") or [{}]
    if "error" in results[0]:
        raise WebError(f"InfluxDB: {results[0]['error']}")
    found: list[dict[str, Any]] = results[0].get("series", [])
    return found


def _rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(series["columns"], values, strict=True)) for values in series.get("values", [])]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metrics(query: QueryInflux) -> list[str]:
    """The numeric fields of ``telemetry`` but ``seq`` and ``boot``: the metrics the page can chart."""
    found = _series(query('SHOW FIELD KEYS FROM "telemetry"'))
    rows = _rows(found[0]) if found else []
    return sorted({str(r["fieldKey"]) for r in rows
                   if r.get("fieldType") in ("float", "integer") and r["fieldKey"] not in NOT_METRICS})


def _sensor_entry(by_sensor: dict[str, dict[str, Any]], device: str, sensor: str) -> dict[str, Any]:
    return by_sensor.setdefault(sensor, {"sensor": sensor or None, "label": sensor or device, "last_ms": None,
                                         "values": {}})


def device_table(devices: Devices, query: QueryInflux) -> list[dict[str, Any]]:
    """One row per (site, device): last reading, its sensors (each with its last values), the
    diagnostics, merged with the registry (state, gaps)."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    sensors: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def entry(tags: dict[str, str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        key = (tags.get("site", ""), tags.get("device", ""))
        return table.setdefault(key, {"site": key[0], "device": key[1]}), sensors.setdefault(key, {})

    for s in _series(query(f'SELECT last("seq") AS "seq" FROM "telemetry" WHERE time > now() - {_LOOKBACK} '
                           'GROUP BY "site", "device", "board", "sensor"')):
        tags, row = s.get("tags", {}), _rows(s)[0]
        row_entry, by_sensor = entry(tags)
        if row["time"] >= row_entry.get("last_reading_ms", row["time"]):
            row_entry.update(board=tags.get("board", ""), last_reading_ms=row["time"], seq=row["seq"])
        sensor = _sensor_entry(by_sensor, row_entry["device"], tags.get("sensor", ""))
        sensor["last_ms"] = max(row["time"], sensor["last_ms"] or row["time"])
    for s in _series(query(f'SELECT last(*) FROM "telemetry" WHERE time > now() - {_LOOKBACK} '
                           'GROUP BY "site", "device", "sensor"')):
        tags, row = s.get("tags", {}), _rows(s)[0]
        row_entry, by_sensor = entry(tags)
        sensor = _sensor_entry(by_sensor, row_entry["device"], tags.get("sensor", ""))
        sensor["values"] = {k[len("last_"):]: v for k, v in sorted(row.items()) if k.startswith("last_")
                            and k[len("last_"):] not in NOT_METRICS and _number(v)}
    fields = ", ".join(f'last("{f}") AS "{f}"' for f in _DIAG)
    for s in _series(query(f'SELECT {fields} FROM "device_diag" WHERE time > now() - {_LOOKBACK} '
                           'GROUP BY "site", "device"')):
        tags, row = s.get("tags", {}), _rows(s)[0]
        entry(tags)[0].update({f: row.get(f) for f in _DIAG})
    for reg in devices():
        entry({"site": str(reg.get("site", "")), "device": str(reg.get("device", ""))})[0].update(reg)
    for key, row_entry in table.items():
        row_entry["sensors"] = sorted(sensors[key].values(), key=lambda e: (e["sensor"] is not None, e["label"]))
    return [table[k] for k in sorted(table)]


def with_gaps(points: list[Point], factor: float = GAP_FACTOR) -> list[Point]:
    """``points`` (time-ordered) with a null point wherever the next reading came more than
    ``factor`` typical intervals (the median step) after the one before."""
    steps = sorted(b[0] - a[0] for a, b in pairwise(points))
    if len(steps) < 2:
        return list(points)
    limit = factor * max(1, steps[len(steps) // 2])
    out = points[:1]
    for prev, cur in pairwise(points):
        if cur[0] - prev[0] > limit:
            out.append(((prev[0] + cur[0]) // 2, None))
        out.append(cur)
    return out


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given {len(values)} times")
    return values[0]


def series_request(params: Mapping[str, list[str]], known: Callable[[], list[str]]) -> tuple[str, int, dict[str, str]]:
    """(metric, minutes, tag filters) of a /api/series request, every value checked."""
    unknown = sorted(set(params) - _SERIES_PARAMS)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(_SERIES_PARAMS))}")
    metric = _one(params, "metric")
    if metric is None:
        raise BadRequest("parameter 'metric' is required, e.g. metric=temp_c")
    if not METRIC.fullmatch(metric):
        raise BadRequest(f"bad metric {metric[:80]!r}: a metric name matches [a-z][a-z0-9_]{{0,63}}")
    if metric in NOT_METRICS or metric not in known():
        raise BadRequest(f"unknown metric {metric!r}: no such field in telemetry")
    text = _one(params, "minutes") or "15"
    if not (text.isdigit() and 1 <= int(text) <= MAX_MINUTES):
        raise BadRequest(f"bad minutes {text[:20]!r}: a whole number from 1 to {MAX_MINUTES}")
    tags = {}
    for tag in ("site", "device"):
        value = _one(params, tag)
        if value is not None:
            if not NAME.fullmatch(value):
                raise BadRequest(f"bad {tag} {value[:40]!r}: a {tag} matches [a-z0-9_-]{{1,32}}")
            tags[tag] = value
    return metric, int(text), tags


def series(query: QueryInflux, params: Mapping[str, list[str]], now_ms: int) -> dict[str, Any]:
    """One line per (site, device, sensor) of a metric over the last ``minutes``, gaps as nulls:
    {"metric", "unit", "minutes", "bucket_s", "from_ms", "to_ms", "lines": [{site, device, sensor,
    label, points: [[ms, value | null], ...]}]}."""
    metric, minutes, tags = series_request(params, lambda: metrics(query))
    bucket_s = max(1, -(-minutes * 60 // MAX_POINTS))
    where = " AND ".join([f"time > now() - {minutes}m", *(f"\"{k}\" = '{v}'" for k, v in sorted(tags.items()))])
    lines = []
    for s in _series(query(f'SELECT mean("{metric}") AS "value" FROM "telemetry" WHERE {where} '
                           f'GROUP BY time({bucket_s}s), "site", "device", "sensor" fill(none)')):
        found = s.get("tags", {})
        site, device, sensor = found.get("site", ""), found.get("device", ""), found.get("sensor", "")
        points: list[Point] = [(int(t), float(v)) for t, v in s.get("values", []) if _number(v)]
        lines.append({"site": site, "device": device, "sensor": sensor or None, "label": sensor or device,
                      "points": with_gaps(points)})
    lines.sort(key=lambda line: (line["site"], line["device"], line["sensor"] is not None, line["label"]))
    return {"metric": metric, "unit": unit_of(metric), "minutes": minutes, "bucket_s": bucket_s,
            "from_ms": now_ms - minutes * 60_000, "to_ms": now_ms, "lines": lines}
