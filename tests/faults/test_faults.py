"""Fault tests: real gateway processes, real Mosquitto (persistence on), real InfluxDB 1.x.

Each test publishes a known set of readings as boards would (paho, QoS1), injects a fault
mid-stream, and proves InfluxDB holds every reading exactly once by (device, boot, seq),
and that the gateways' own records agree (idempotency keys = readings, spool drained, no
dead letters). InfluxDB's outage lasts a minute (SEN_FAULT_OUTAGE_S to change it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from tests.faults.kit import FaultProxy, GatewayProcess, Publisher, assert_exactly_once, stored
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = ("dev-a", "dev-b", "dev-c")
OUTAGE_S = float(os.environ.get("SEN_FAULT_OUTAGE_S", "60"))


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"boards-{influx_db}")
    yield pub
    pub.close()


def _agree(gateways: list[GatewayProcess], total: int) -> None:
    for gw in gateways:
        assert gw.depth_and_dead() == (0, 0), gw.log.read_text(errors="replace")[-3000:]
    assert sum(gw.spooled_keys() for gw in gateways) == total


@pytest.mark.parametrize("workers", [1, 2])  # 2: the supervisor killed, its workers left to stop
def test_kill_9_of_the_gateway_three_times_loses_and_doubles_nothing(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
        tmp_path: Path, workers: int) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db, workers=workers)
    gw.start()
    seqs = range(1, 101)
    sending = threading.Thread(target=publisher.readings, args=(DEVICES, seqs),
                               kwargs={"pace_s": 0.05})  # a ~5 s stream: the kills land in it
    sending.start()
    mid_stream = []
    try:
        for _ in range(3):
            seen = len(stored(influxdb, influx_db))
            wait_for(lambda seen=seen: len(stored(influxdb, influx_db)) > seen or not sending.is_alive(),
                     timeout=30, what="progress before the kill")
            mid_stream.append(sending.is_alive())
            gw.kill()
            gw.start()
        assert mid_stream[0], "the first kill should land mid-stream"
        sending.join(timeout=60)
        publisher.wait_sent()
        assert_exactly_once(influxdb, influx_db, DEVICES, seqs)
    finally:
        gw.stop()
    _agree([gw], len(DEVICES) * len(seqs))


def test_broker_restart_mid_stream(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str,
                                   publisher: Publisher, tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db)
    gw.start()
    try:
        publisher.readings(DEVICES, range(1, 31))
        publisher.wait_sent()
        mosquitto.restart()  # persistence keeps both sessions and the queued messages
        wait_for(publisher.client.is_connected, timeout=30, what="the boards to reconnect")
        publisher.readings(DEVICES, range(31, 61))
        publisher.wait_sent()
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 61))
    finally:
        gw.stop()
    _agree([gw], len(DEVICES) * 60)


def test_influxdb_stopped_for_a_minute_then_restarted(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
        tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db)
    gw.start()
    try:
        publisher.readings(DEVICES, range(1, 21))
        publisher.wait_sent()
        influxdb.stop()
        # A minute without InfluxDB while the boards go on: every reading waits in the spool.
        down_until = time.monotonic() + OUTAGE_S
        for first in range(21, 61, 10):
            publisher.readings(DEVICES, range(first, first + 10))
            publisher.wait_sent()
            time.sleep(max(0.0, (down_until - time.monotonic()) / ((61 - first) // 10)))
        wait_for(lambda: gw.depth_and_dead()[0] > 0, timeout=30, what="lines kept in the spool")
        influxdb.start()
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 61))
    finally:
        gw.stop()
    _agree([gw], len(DEVICES) * 60)


def test_influxdb_answering_500_then_413(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str,
                                         publisher: Publisher, proxy: FaultProxy,
                                         tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, proxy.url, influx_db, "--influx-api", "v1")
    proxy.fail_with = 500
    gw.start()
    try:
        publisher.readings(DEVICES, range(1, 41))
        publisher.wait_sent()
        wait_for(lambda: proxy.counts[500] >= 2, timeout=30, what="two writes refused with 500")
        proxy.fail_with, proxy.max_lines = None, 7  # now: batches of more than 7 lines get 413
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 41))
        assert proxy.counts[413] > 0
    finally:
        gw.stop()
    _agree([gw], len(DEVICES) * 40)


def test_full_spool_stops_acking_instead_of_dropping(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
        proxy: FaultProxy, tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, proxy.url, influx_db, "--influx-api", "v1",
                        "--spool-max-lines", "30")
    proxy.fail_with = 503
    gw.start()
    try:
        publisher.readings(DEVICES, range(1, 51))  # 150 readings, room for 30
        wait_for(lambda: "spool full" in gw.log.read_text(errors="replace"), timeout=30,
                 what="the gateway to report its spool full")
        depth, _ = gw.depth_and_dead()
        assert 30 <= depth < 150  # it stopped taking messages; the broker holds the rest
        proxy.fail_with = None
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 51))
        publisher.wait_sent()
    finally:
        gw.stop()
    _agree([gw], len(DEVICES) * 50)


def test_two_gateways_on_a_shared_subscription_one_killed(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
        tmp_path: Path) -> None:
    one = GatewayProcess(tmp_path, "gw1", mosquitto, influxdb.url, influx_db, "--shared-group", "sen")
    two = GatewayProcess(tmp_path, "gw2", mosquitto, influxdb.url, influx_db, "--shared-group", "sen")
    one.start()
    two.start()
    try:
        publisher.readings(DEVICES, range(1, 41))
        wait_for(lambda: len(stored(influxdb, influx_db)) >= 30, timeout=30, what="first readings")
        two.kill()
        publisher.readings(DEVICES, range(41, 81))
        publisher.wait_sent()
        two.start()  # its session's unacked messages come back to it
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 81))
    finally:
        one.stop()
        two.stop()
    assert one.spooled_keys() > 0 and two.spooled_keys() > 0  # both took a share
    for gw in (one, two):
        assert gw.depth_and_dead() == (0, 0)
    # Each reading was committed by at least one gateway; a message caught in flight by the
    # kill may have been committed by both (InfluxDB still holds it once: same identity).
    assert one.spooled_keys() + two.spooled_keys() >= len(DEVICES) * 80
