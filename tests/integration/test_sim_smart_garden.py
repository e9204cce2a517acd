"""`sen sim --profile smart-garden` end to end: virtual Yolo UNO boards with the smart-garden example's
sensors (DHT20, capacitive soil probe, BH1750; firmware/examples/smart-garden.json) → Mosquitto →
`sen gateway run` → InfluxDB 1.x: each reading lands with its sensor tag and its fields."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from tests.integration.helpers import sen_process, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

BOARDS = 2
READINGS = 30


def _count(influxdb: InfluxDB, db: str) -> int:
    rows = influxdb.rows('SELECT count("seq") FROM "telemetry"', db)
    return int(rows[0]["count"]) if rows else 0


def test_smart_garden_boards_land_with_their_sensor_tags(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    started_ms = time.time() * 1000
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"garden-{influx_db}", log=log)
    try:
        wait_for(lambda: "subscribed to sen/v1/+/+/telemetry" in log.read_text(), timeout=30,
                 what="the gateway's subscription")
        sim = sen_process("sim", "--mqtt", mosquitto.url, "--profile", "smart-garden", "--boards", str(BOARDS),
                          "--readings", str(READINGS), "--interval-ms", "100", "--site", "garden",
                          "--heapsize", "64K", "--state-dir", str(tmp_path / "boards"), log=tmp_path / "sim.log")
        assert sim.wait(timeout=120) == 0, (tmp_path / "sim.log").read_text()
        wait_for(lambda: _count(influxdb, influx_db) >= BOARDS * READINGS, timeout=30,
                 what=f"{BOARDS * READINGS} points in InfluxDB")
    finally:
        code = stop(gateway, timeout=30)
    assert code == 0, log.read_text()

    answer = influxdb.query('SHOW TAG VALUES FROM "telemetry" WITH KEY = "sensor"', influx_db)
    assert {v[1] for v in answer["results"][0]["series"][0]["values"]} == {"dht20", "soil", "bh1750"}
    fields = {name for name, _ in
              influxdb.query('SHOW FIELD KEYS FROM "telemetry"', influx_db)["results"][0]["series"][0]["values"]}
    assert {"moisture_pct", "soil_raw", "lux", "temp_c", "rh_pct"} <= fields
    rows = influxdb.rows('SELECT * FROM "telemetry" GROUP BY *', influx_db)
    assert len(rows) == BOARDS * READINGS
    assert {r["device"] for r in rows} == {f"sim-{i:04d}" for i in range(BOARDS)}
    for r in rows:
        assert r["site"] == "garden" and r["board"] == "yolo-uno" and r["time"] >= started_ms - 1000
        if r["sensor"] == "soil":
            assert 0 <= r["moisture_pct"] <= 100 and r["lux"] is None and r["temp_c"] is None
        elif r["sensor"] == "bh1750":
            assert r["lux"] >= 0 and r["moisture_pct"] is None
        else:
            assert -40 <= r["temp_c"] <= 85 and 0 <= r["rh_pct"] <= 100
    for sensor in ("soil", "bh1750", "dht20"):  # every board sampled each of its sensors
        for device in (f"sim-{i:04d}" for i in range(BOARDS)):
            assert [r for r in rows if r["sensor"] == sensor and r["device"] == device], (sensor, device)
