"""Identity end to end, on a real Mosquitto and InfluxDB 1.x: the same device name at two
sites, a re-flashed board counting from boot 1 again, and one series per sensor."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from gateway.service.options import GatewayOptions
from tests.integration.helpers import wait_for
from tests.integration.test_gateway import BASE_MS, Gateway, Publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def options(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> GatewayOptions:
    return GatewayOptions(mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                          spool_dir=tmp_path / "spool", client_id=f"gw-{influx_db}",
                          batch_size=25, flush_interval_s=0.2, reconnect_max_s=2, ack_interval_s=0)


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"pub-{influx_db}")
    yield pub
    pub.close()


def _send(pub: Publisher, site: str, seqs: range, *, fid: int | None = None, up0: int = 50_000,
          sensors: tuple[str | None, ...] = (None,), ts: bool = False) -> None:
    for seq in seqs:
        readings = []
        for i, sensor in enumerate(sensors):
            reading: dict[str, object] = {"seq": seq * len(sensors) + i, "m": {"temp_c": 20.0 + i}}
            reading.update({"ts": BASE_MS + seq * 1000} if ts else {"up": up0 + seq * 1000})
            if sensor:
                reading["s"] = sensor
            readings.append(reading)
        doc: dict[str, object] = {"v": 1, "dev": "dev-x", "boot": 1, "up": up0 + seq * 1000, "r": readings}
        if fid is not None:
            doc["fid"] = fid
        pub.send(f"sen/v1/{site}/dev-x/telemetry", json.dumps(doc).encode())


def _count(influxdb: InfluxDB, db: str, where: str = "") -> int:
    rows = influxdb.rows(f'SELECT count("seq") FROM "telemetry" {where}', db)
    return int(rows[0]["count"]) if rows else 0


def _retained_ack(broker: Mosquitto, site: str) -> dict[str, int]:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(f"sen/v1/{site}/dev-x/ack", qos=1)
    client.loop_start()
    try:
        wait_for(lambda: got, timeout=10, what=f"the retained ack of {site}/dev-x")
    finally:
        client.loop_stop()
        client.disconnect()
    doc: dict[str, int] = json.loads(got[-1])
    return doc


def test_the_same_device_name_at_two_sites_keeps_both_and_acks_each(
    options: GatewayOptions, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(options, caplog)
    try:
        _send(publisher, "a", range(1, 4), ts=True)
        _send(publisher, "b", range(1, 3), ts=True)
        wait_for(lambda: _count(influxdb, influx_db) >= 5, timeout=30, what="5 points")
        wait_for(lambda: _retained_ack(mosquitto, "b")["seq"] == 2, timeout=10, what="site b's ack at seq 2")
        wait_for(lambda: _retained_ack(mosquitto, "a")["seq"] == 3, timeout=10, what="site a's ack at seq 3")
    finally:
        gateway.stop()
    assert _count(influxdb, influx_db, "WHERE site = 'a'") == 3
    assert _count(influxdb, influx_db, "WHERE site = 'b'") == 2
    assert _retained_ack(mosquitto, "a")["seq"] == 3 and _retained_ack(mosquitto, "b")["seq"] == 2


def test_a_reflashed_board_at_boot_1_again_loses_none_of_its_new_readings(
    options: GatewayOptions, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(options, caplog)
    try:
        _send(publisher, "lab", range(1, 31), fid=111, up0=500_000)
        wait_for(lambda: _count(influxdb, influx_db) >= 30, timeout=30, what="the first flash's 30 points")
        _send(publisher, "lab", range(1, 31), fid=222, up0=1_000)  # erased: boot 1, seqs 1.. again
        wait_for(lambda: _count(influxdb, influx_db) >= 60, timeout=30, what="60 points")
        # The last batch's ack goes out after its commit, and the writer may have its points in
        # InfluxDB first: the ack is waited for, not taken as the count reaches 60.
        ack = wait_for(lambda: (a := _retained_ack(mosquitto, "lab"))["fid"] == 222 and a["seq"] == 30 and a,
                       timeout=10, what="the new flash's ack at seq 30")
    finally:
        gateway.stop()
    assert _count(influxdb, influx_db) == 60
    assert (ack["fid"], ack["boot"], ack["seq"]) == (222, 1, 30)


def test_each_sensor_is_its_own_series_and_untagged_readings_stay_queryable(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(options, caplog)
    try:
        _send(publisher, "lab", range(1, 6), sensors=("sht31", "dht20", None), ts=True)
        wait_for(lambda: _count(influxdb, influx_db) >= 15, timeout=30, what="15 points")
    finally:
        gateway.stop()
    tags = influxdb.query('SHOW TAG VALUES FROM "telemetry" WITH KEY = "sensor"', influx_db)
    assert sorted(v[1] for v in tags["results"][0]["series"][0]["values"]) == ["dht20", "sht31"]
    assert _count(influxdb, influx_db, "WHERE sensor = 'sht31'") == 5
    assert _count(influxdb, influx_db, "WHERE sensor = ''") == 5  # readings that name no sensor
    means = influxdb.rows('SELECT mean("temp_c") FROM "telemetry" GROUP BY "sensor"', influx_db)
    assert sorted((r["sensor"], r["mean"]) for r in means) == [("", 22.0), ("dht20", 21.0), ("sht31", 20.0)]


def test_the_gateways_own_acks_do_not_come_back_to_it(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """MQTT v5 No Local on the ack subscription: N telemetry messages are N messages received,
    not N plus one per ack the gateway published (it acks after every batch here). A broker of
    its own, so no retained ack of another test is delivered to it."""
    with Mosquitto(tmp_path / "broker") as broker:
        gateway = Gateway(dataclasses.replace(options, mqtt_url=broker.url), caplog)
        publisher = Publisher(broker, f"pub-own-{influx_db}")
        try:
            for seq in range(1, 21):
                _send(publisher, "lab", range(seq, seq + 1), ts=True)
            wait_for(lambda: _count(influxdb, influx_db) >= 20, timeout=30, what="20 points")
            time.sleep(1.0)  # waiting for an absence: any ack that would come back has come by now
        finally:
            publisher.close()
            gateway.stop()
    stopped = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("gateway stopped"))
    assert "received 20," in stopped and "acks_published 0," not in stopped, stopped
