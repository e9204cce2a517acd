"""Grafana's provisioned dashboards: valid JSON, data sources that resolve, queries that name only
the InfluxDB schema (DESIGN.md), and every query accepted by a real InfluxDB 1.x (InfluxQL)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.devstack import InfluxDB

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRICS = {"temp_c", "rh_pct", "p_hpa", "vbat_v"}  # examples of DESIGN.md; $metric covers the rest
SCHEMA: dict[str, tuple[set[str], set[str]]] = {  # measurement -> (tags, fields)
    "telemetry": ({"site", "device", "board", "sensor"}, {"seq", "boot", "$metric"} | METRICS),
    "device_diag": ({"site", "device"}, {"rssi_dbm", "heap_free", "outbox", "dropped", "reset"}),
    "gateway": ({"gateway"}, {"received", "readings", "duplicates", "rejected", "written", "set_aside",
                              "write_failures", "spool_depth", "write_latency_ms", "watchdog_trips",
                              "acks_published", "spool_full_waits"}),
}


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, InfluxQL, the object holding its datasource) for every panel target and variable."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r}", target["query"], target
        yield f"panel {panel['title']!r}", "", panel
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']}", var["query"], var


def _provisioned_uids() -> dict[str, set[str]]:
    found = {}
    for path in (GRAFANA / "provisioning/datasources/influxdb.yaml", GRAFANA / "pi/datasources/influxdb.yaml"):
        found[path.parent.parent.name] = {d["uid"] for d in yaml.safe_load(path.read_text())["datasources"]}
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_and_its_datasources_resolve(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for uids in _provisioned_uids().values():  # the Compose stack's and the Pi's alike
        for where, _query, holder in _queries(dashboard):
            assert holder["datasource"]["uid"] in uids, where
            assert holder["datasource"]["type"] == "influxdb", where


def _quoted(text: str) -> set[str]:
    return set(re.findall(r'"([^"]+)"', text))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_name_only_the_schema(path: Path) -> None:
    for where, query, _holder in _queries(json.loads(path.read_text())):
        if not query:
            continue
        measurement = re.search(r'FROM "(\w+)"', query)
        assert measurement and measurement.group(1) in SCHEMA, f"{where}: {query}"
        tags, fields = SCHEMA[measurement.group(1)]
        if query.startswith("SHOW TAG VALUES"):
            assert _quoted(query.split("FROM", 1)[1]) - {measurement.group(1)} <= tags, where
            continue
        if query.startswith("SHOW FIELD KEYS"):
            continue
        select, rest = query[len("SELECT "):].split(" FROM ", 1)
        aliases = set(re.findall(r'AS "([^"]+)"', select))
        assert _quoted(select) - aliases <= fields, f"{where}: unknown field in {select}"
        assert _quoted(rest) - {measurement.group(1)} <= tags, f"{where}: unknown tag in {rest}"


def test_gateway_counters_are_the_ones_the_gateway_writes() -> None:
    source = (ROOT / "gateway" / "service" / "main.py").read_text()
    for name in SCHEMA["gateway"][1]:
        assert f'"{name}"' in source, f"dashboard counter {name} is not written by gateway/service/main.py"


def _readings_dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "sen-readings.json").read_text()))


def test_readings_are_grouped_by_sensor() -> None:
    """Two chips of one board measuring the same metric stay two lines: every readings query that
    draws devices groups by "sensor" and names the line by it; the $sensor variable's All keeps
    readings without a sensor tag."""
    dashboard = _readings_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["sensor"]["query"].startswith('SHOW TAG VALUES FROM "telemetry" WITH KEY = "sensor"')
    assert variables["sensor"]["includeAll"] and variables["sensor"]["allValue"] == ".*"
    per_device = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            query = target["query"]
            assert '"sensor" =~ /^$sensor$/' in query, f"panel {panel['title']!r} ignores $sensor"
            group_by = query.split(" GROUP BY ", 1)[1]
            if '"device"' in group_by or panel.get("repeat") == "device":
                per_device += 1
                assert '"sensor"' in group_by, f"panel {panel['title']!r} mixes the sensors of a device"
                assert "$tag_device $tag_sensor" in target["alias"], panel["title"]
            if "$metric" in query:
                assert panel["fieldConfig"]["defaults"]["custom"]["spanNulls"] > 0, f"{panel['title']!r}: no gaps"
    assert per_device >= 3


def _as_grafana_would(query: str, sensor: str = ".*") -> str:
    for var, value in (("$timeFilter", "time > now() - 1h"), ("$__interval", "1m"), ("$metric", "temp_c"),
                       ("$site", "(farm|lab)"), ("$device", ".*"), ("$sensor", sensor), ("$gateway", ".*")):
        query = query.replace(var, value)
    return query


@pytest.mark.integration
def test_every_query_runs_on_influxdb_1x(influxdb: InfluxDB, influx_db: str) -> None:
    now = time.time_ns() // 1_000_000
    lines = []
    for i in range(20):
        ts = now - (20 - i) * 15_000
        lines += [f"telemetry,board=sim,device=sim-0000,site=lab temp_c={21 + i / 10},seq={i + 1}i,boot=1i {ts}",
                  f"telemetry,board=yolo-uno,device=esp32-aa01,sensor=sht31,site=farm temp_c={21 + i / 10},"
                  f"rh_pct=55.0,seq={2 * i + 1}i,boot=1i {ts}",
                  f"telemetry,board=yolo-uno,device=esp32-aa01,sensor=dht20,site=farm temp_c={24 - i / 10},"
                  f"rh_pct=48.0,seq={2 * i + 2}i,boot=1i {ts + 3000}",
                  f"device_diag,device=sim-0000,site=lab rssi_dbm=-61i,heap_free=40000i,outbox=1i,dropped=0i {ts}",
                  "gateway,gateway=sen-gateway " + ",".join(f"{f}={i * 3}i" for f in SCHEMA["gateway"][1]
                                                            if f != "write_latency_ms") + f",write_latency_ms=4.5 {ts}"]
    request = urllib.request.Request(f"{influxdb.url}/write?db={influx_db}&precision=ms",
                                     data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    for path in DASHBOARDS:
        for where, query, _holder in _queries(json.loads(path.read_text())):
            if query:
                answer = influxdb.query(_as_grafana_would(query), influx_db)  # raises on an InfluxQL error
                assert answer["results"][0].get("series"), f"{path.name} {where}: no data for {query}"
    # the readings panels: a line per (device, sensor); untagged readings kept by All, dropped by a choice
    panels = {p["id"]: p for p in _readings_dashboard()["panels"]}
    by_sensor = panels[1]["targets"][0]["query"]
    found = influxdb.query(_as_grafana_would(by_sensor), influx_db)["results"][0]["series"]
    assert sorted((s["tags"]["device"], s["tags"]["sensor"]) for s in found) == [
        ("esp32-aa01", "dht20"), ("esp32-aa01", "sht31"), ("sim-0000", "")]
    found = influxdb.query(_as_grafana_would(by_sensor, "(dht20)"), influx_db)["results"][0]["series"]
    assert [(s["tags"]["device"], s["tags"]["sensor"]) for s in found] == [("esp32-aa01", "dht20")]
    values = {s["tags"]["sensor"]: [v[1] for v in s["values"] if v[1] is not None] for s in found}
    assert min(values["dht20"]) > 22  # the DHT20's own readings, not a mean with the SHT31's
