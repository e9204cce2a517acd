"""The walking skeleton end to end, on real parts: virtual boards (the firmware on the
MicroPython VM) → Mosquitto → `sen gateway run` → InfluxDB 1.x, read back with InfluxQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, Mosquitto, free_port
from tests.integration.helpers import sen_process, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

BOARDS = 3
READINGS = 20


def _count(influxdb: InfluxDB, db: str) -> int:
    rows = influxdb.rows('SELECT count("seq") FROM "telemetry"', db)
    return int(rows[0]["count"]) if rows else 0


def test_three_boards_twenty_readings_make_exactly_sixty_points(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    started_ms = time.time() * 1000
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"e2e-{influx_db}", log=tmp_path / "gateway.log")
    try:
        # A board's first readings would reach nobody before the gateway's subscription stands
        # (they would come again only after the board's ack timeout): start the boards after it.
        log = tmp_path / "gateway.log"
        wait_for(lambda: "subscribed to sen/v1/+/+/telemetry" in log.read_text(), timeout=30,
                 what="the gateway's subscription")
        sim = sen_process("sim", "--mqtt", mosquitto.url, "--boards", str(BOARDS), "--readings", str(READINGS),
                          "--interval-ms", "50", "--site", "e2e", "--state-dir", str(tmp_path / "boards"),
                          log=tmp_path / "sim.log")
        assert sim.wait(timeout=120) == 0, (tmp_path / "sim.log").read_text()
        wait_for(lambda: _count(influxdb, influx_db) >= BOARDS * READINGS, timeout=30,
                 what="60 points in InfluxDB")
    finally:
        code = stop(gateway, timeout=30)
    assert code == 0, (tmp_path / "gateway.log").read_text()
    finished_ms = time.time() * 1000

    rows = influxdb.rows('SELECT * FROM "telemetry" GROUP BY *', influx_db)
    assert len(rows) == BOARDS * READINGS
    devices = {f"sim-{i:04d}" for i in range(BOARDS)}
    assert {r["device"] for r in rows} == devices
    for device in devices:
        mine = [r for r in rows if r["device"] == device]
        assert sorted(r["seq"] for r in mine) == list(range(1, READINGS + 1))
        assert len({r["boot"] for r in mine}) == 1
        times = [r["time"] for r in sorted(mine, key=lambda r: r["seq"])]
        assert times == sorted(times) and len(set(times)) == READINGS, "one distinct, rising timestamp per reading"
    for r in rows:
        assert r["site"] == "e2e" and r["board"] == "sim"
        assert started_ms - 1000 <= r["time"] <= finished_ms + 1000
        assert -40 <= r["temp_c"] <= 85 and 0 <= r["rh_pct"] <= 100
        assert isinstance(r["seq"], int) and isinstance(r["boot"], int)
    # The field types InfluxDB stored: seq and boot integers, the metrics floats.
    field_types = {name: kind for name, kind in
                   influxdb.query('SHOW FIELD KEYS FROM "telemetry"', influx_db)["results"][0]["series"][0]["values"]}
    assert field_types["seq"] == "integer" and field_types["boot"] == "integer"
    assert field_types["temp_c"] == "float" and field_types["rh_pct"] == "float"


@pytest.mark.parametrize("down", ["database", "broker"])
def test_gateway_reports_an_unreachable_peer_and_keeps_running(
    down: str, mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path,
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    mqtt = f"mqtt://{dead}" if down == "broker" else mosquitto.url
    influx = f"http://{dead}" if down == "database" else influxdb.url
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mqtt, "--influx", influx, "--database", "nowhere",
                          "--spool", str(tmp_path / "spool"), "--client-id", f"dead-{down}", log=log)
    try:
        wait_for(lambda: dead in log.read_text() and "refused" in log.read_text().lower(), timeout=20,
                 what=f"a log line naming the unreachable {down} ({dead})")
        assert gateway.poll() is None, log.read_text()
    finally:
        code = stop(gateway)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
