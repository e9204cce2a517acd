"""The gateway service (in a thread) against real private Mosquitto and InfluxDB 1.x."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.service import main as service
from gateway.devstack import InfluxDB, Mosquitto
from gateway.service.options import GatewayOptions
from ingest.spool import Spool
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

DEVICES = ("sim-0001", "sim-0002", "sim-0003")
PER_DEVICE = 20
BASE_MS = 1_763_800_000_000


class Gateway:
    """``service.run`` on a thread; :meth:`stop` sets the event and checks it returned 0.

    The first start waits for the subscription: MQTT keeps messages only for a session
    that has subscribed, and in these tests the session is new.
    """

    def __init__(self, options: GatewayOptions, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        self.options = options
        self.stop_event = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(target=self._run, name="gateway-under-test")
        self.thread.start()
        wait_for(lambda: any("subscribed to sen/v1/+/+/telemetry" in r.getMessage()
                             for r in caplog.records), timeout=30, what="the gateway's subscription")
        caplog.clear()

    def _run(self) -> None:
        self.result.append(service.run(self.options, stop=self.stop_event))

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive() and self.result == [0]


class Publisher:
    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def reading(self, device: str, seq: int) -> None:
        doc = {"v": 1, "dev": device, "boot": 7, "up": 5000 + seq, "board": "test-board",
               "r": [{"seq": seq, "ts": BASE_MS + seq * 1000, "m": {"temp_c": 20.0 + seq / 10,
                                                                  "rh_pct": 50}}]}
        self.send(f"sen/v1/lab/{device}/telemetry", json.dumps(doc).encode())

    def readings(self, seqs: range) -> None:
        for seq in seqs:
            for device in DEVICES:
                self.reading(device, seq)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def options(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> GatewayOptions:
    return GatewayOptions(mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                          spool_dir=tmp_path / "spool", client_id=f"gw-{influx_db}",
                          batch_size=25, flush_interval_s=0.2, reconnect_max_s=2)


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"pub-{influx_db}")
    yield pub
    pub.close()


def _rows(influxdb: InfluxDB, db: str) -> list[dict[str, Any]]:
    return influxdb.rows('SELECT * FROM "telemetry" GROUP BY *', db)


def _count(influxdb: InfluxDB, db: str) -> int:
    try:
        rows = influxdb.rows('SELECT count("seq") FROM "telemetry"', db)
    except Exception:  # noqa: BLE001 — InfluxDB may be starting
        return 0
    return int(rows[0]["count"]) if rows else 0


def _check_points(influxdb: InfluxDB, db: str, seqs: range) -> None:
    rows = _rows(influxdb, db)
    assert len(rows) == len(DEVICES) * len(seqs)
    for device in DEVICES:
        mine = sorted((r for r in rows if r["device"] == device), key=lambda r: r["seq"])
        assert [r["seq"] for r in mine] == list(seqs)
        for r in mine:
            assert r["time"] == BASE_MS + r["seq"] * 1000
            assert r["site"] == "lab" and r["board"] == "test-board" and r["boot"] == 7
            assert r["temp_c"] == pytest.approx(20.0 + r["seq"] / 10) and r["rh_pct"] == 50.0
    kinds = dict(influxdb.query('SHOW FIELD KEYS FROM "telemetry"', db)["results"][0]["series"][0]["values"])
    assert kinds == {"seq": "integer", "boot": "integer", "temp_c": "float", "rh_pct": "float"}


def _waits_for_points(influxdb: InfluxDB, db: str, n: int, timeout: float = 60) -> None:
    wait_for(lambda: _count(influxdb, db) >= n, timeout=timeout, what=f"{n} points in {db}")


def test_sixty_readings_land_and_bad_messages_are_set_aside(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(options, caplog)
    try:
        publisher.send("sen/v1/lab/sim-0001/telemetry", b"not json at all")
        publisher.send("sen/v1/lab/sim-0002/telemetry", b'{"v": 2, "dev": "sim-0002"}')
        publisher.send("sen/v1/lab/sim-0003/telemetry", b'{"v": 1, "dev": "sim-0001", "boot": 1, "r": []}')
        publisher.readings(range(1, PER_DEVICE + 1))
        _waits_for_points(influxdb, influx_db, len(DEVICES) * PER_DEVICE)
    finally:
        gateway.stop()
    _check_points(influxdb, influx_db, range(1, PER_DEVICE + 1))
    spool = Spool(options.spool_dir)
    try:
        assert sorted(d.reason for d in spool.dead_letters()) == ["not_json", "schema_version",
                                                                  "topic_mismatch"]
        assert spool.depth() == 0
    finally:
        spool.close()


def test_gateway_started_while_influxdb_is_down_writes_everything_later(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    influxdb.stop()
    gateway = Gateway(options, caplog)
    try:
        publisher.readings(range(1, PER_DEVICE + 1))
        spool = Spool(options.spool_dir)
        try:
            wait_for(lambda: spool.depth() >= len(DEVICES) * PER_DEVICE, timeout=30,
                     what="all readings spooled while InfluxDB is down")
        finally:
            spool.close()
        influxdb.start()
        _waits_for_points(influxdb, influx_db, len(DEVICES) * PER_DEVICE)
    finally:
        gateway.stop()
    _check_points(influxdb, influx_db, range(1, PER_DEVICE + 1))


def test_gateway_restart_mid_stream_loses_nothing(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(options, caplog)
    publishing = threading.Thread(target=publisher.readings, args=(range(11, 16),))
    try:
        publisher.readings(range(1, 11))
        _waits_for_points(influxdb, influx_db, len(DEVICES) * 10)
        publishing.start()  # these race the stop: some land before it, some wait in the broker
    finally:
        gateway.stop()
    publishing.join(timeout=60)
    assert not publishing.is_alive()
    publisher.readings(range(16, PER_DEVICE + 1))  # while the gateway is away
    assert _count(influxdb, influx_db) < len(DEVICES) * PER_DEVICE
    gateway = Gateway(options, caplog)
    try:
        _waits_for_points(influxdb, influx_db, len(DEVICES) * PER_DEVICE)
    finally:
        gateway.stop()
    _check_points(influxdb, influx_db, range(1, PER_DEVICE + 1))
