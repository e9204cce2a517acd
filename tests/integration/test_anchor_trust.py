"""Clock anchors from what the gateway can trust: a board without NTP whose first message waited
in the broker while the gateway was away is not stamped late by that wait (real Mosquitto and
InfluxDB; the gateway service in a thread)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from gateway.service import intake
from gateway.service.options import GatewayOptions
from tests.integration.helpers import wait_for
from tests.integration.test_gateway import Gateway, Publisher

pytestmark = pytest.mark.integration

AWAY_S = 3.0  # how long the gateway is away while the first message waits in the broker


@pytest.fixture
def options(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> GatewayOptions:
    return GatewayOptions(mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                          spool_dir=tmp_path / "spool", client_id=f"gw-{influx_db}", flush_interval_s=0.2)


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"pub-{influx_db}")
    yield pub
    pub.close()


def _send(pub: Publisher, seq: int, booted_ms: int, device: str) -> None:
    """An up-only reading of boot 1, as a board with no clock sends it: uptime at send."""
    up = time.time_ns() // 1_000_000 - booted_ms
    doc = {"v": 1, "dev": device, "boot": 1, "up": up, "r": [{"seq": seq, "up": up - 5, "m": {"t_c": 1.0}}]}
    pub.send(f"sen/v1/lab/{device}/telemetry", json.dumps(doc).encode())


def _times(influxdb: InfluxDB, db: str, device: str) -> dict[int, int]:
    rows = influxdb.rows(f'SELECT "seq" FROM "telemetry" WHERE device = \'{device}\'', db)
    return {int(r["seq"]): int(r["time"]) for r in rows}


def _away_then_back(options: GatewayOptions, caplog: pytest.LogCaptureFixture, publisher: Publisher,
                    device: str) -> int:
    Gateway(options, caplog).stop()  # the broker keeps the session and queues for it
    booted_ms = time.time_ns() // 1_000_000 - 60_000  # the board has been up a minute
    _send(publisher, 1, booted_ms, device)
    time.sleep(AWAY_S)  # the message waits in the broker this long: the fault under test
    return booted_ms


def test_a_queued_first_message_is_anchored_by_the_live_one_that_follows(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    booted_ms = _away_then_back(options, caplog, publisher, "no-ntp-1")
    gateway = Gateway(options, caplog)
    try:
        _send(publisher, 2, booted_ms, "no-ntp-1")  # live
        times = wait_for(lambda: len(t := _times(influxdb, influx_db, "no-ntp-1")) >= 2 and t, timeout=30,
                         what="2 points")
    finally:
        gateway.stop()
    # reading 1 was sampled at booted + up - 5: stamped within the live message's own delay
    true_ms = booted_ms + 60_000 - 5
    assert abs(times[1] - true_ms) < 1000, f"reading 1 stamped {times[1] - true_ms} ms off"


def test_without_a_live_message_the_queued_one_anchors_after_the_hold(
    options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "HOLD_MAX_S", 1.0)
    _away_then_back(options, caplog, publisher, "no-ntp-2")
    gateway = Gateway(options, caplog)
    try:
        times = wait_for(lambda: _times(influxdb, influx_db, "no-ntp-2"), timeout=30, what="the held reading")
    finally:
        gateway.stop()
    assert list(times) == [1]
    assert any("no live message came" in r.getMessage() for r in caplog.records)
