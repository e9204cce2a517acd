"""Floods from outside: a QoS0 flood while the spool is full must not grow the gateway's memory
without bound, and must cost no QoS1 reading (real gateway process, Mosquitto and InfluxDB)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from gateway.service.intake import MAX_WAITING
from tests.faults.kit import GatewayProcess, Publisher, stored
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = ("dev-a", "dev-b", "dev-c")
FLOOD = MAX_WAITING + 5_000


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"boards-{influx_db}")
    yield pub
    pub.close()


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


def test_a_qos0_flood_while_the_spool_is_full_is_bounded_and_costs_no_qos1_reading(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher, tmp_path: Path) -> None:
    influxdb.stop()  # nothing drains: the spool fills and the intake stops taking messages
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db, "--spool-max-lines", "20")
    gw.start()
    try:
        publisher.readings(DEVICES, range(1, 11))
        publisher.wait_sent()
        assert gw.proc is not None
        before = _rss_kib(gw.proc.pid)
        flood = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{influx_db}")
        flood.connect(mosquitto.host, mosquitto.port)
        flood.loop_start()
        try:
            for i in range(FLOOD):
                doc = {"v": 1, "dev": f"x{i % 500}", "boot": 1, "r": [{"seq": i + 1, "ts": 1_763_800_000_000 + i,
                                                                        "m": {"junk": float(i)}}]}
                flood.publish(f"sen/v1/flood/x{i % 500}/telemetry", json.dumps(doc), qos=0)
            last = flood.publish("sen/v1/flood/x0/telemetry", b"{}", qos=1)
            last.wait_for_publish(timeout=60)
        finally:
            flood.loop_stop()
            flood.disconnect()
        wait_for(lambda: "QoS0 message on" in gw.log.read_text(errors="replace"), timeout=60,
                 what="the gateway dropping QoS0 messages past its bound")
        grown_mib = (_rss_kib(gw.proc.pid) - before) / 1024
        influxdb.start()
        wait_for(lambda: _qos1_landed(influxdb, influx_db), timeout=120,
                 what="the QoS1 readings in InfluxDB")
    finally:
        gw.stop()
    # Every QoS1 reading exactly once (the flood's own devices, queued before the bound, land too).
    got = {key: n for key, n in stored(influxdb, influx_db).items() if key[0] in DEVICES}
    assert got == {(d, 1, seq): 1 for d in DEVICES for seq in range(1, 11)}
    dropped = [int(n) for n in re.findall(r"qos0_dropped (\d+)", gw.log.read_text(errors="replace"))]
    assert dropped and dropped[-1] >= FLOOD - MAX_WAITING - 1_000, dropped
    assert grown_mib < 40, f"the gateway grew by {grown_mib:.0f} MiB under the flood"


def _qos1_landed(influxdb: InfluxDB, db: str) -> bool:
    try:
        rows = influxdb.rows("SELECT count(seq) FROM telemetry WHERE site = 'lab'", db)
    except Exception:  # noqa: BLE001 — InfluxDB may still be starting
        return False
    return bool(rows) and int(rows[0]["count"]) >= len(DEVICES) * 10


def test_a_queued_backlog_is_drained_within_the_receive_maximum_and_exactly_once(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher, tmp_path: Path) -> None:
    """Mosquitto 2.0 sends a session's queued backlog past the receive maximum; the gateway
    holds to it itself (paho's thread waits for the intake), so memory stays bounded."""
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db)
    gw.start()
    gw.stop()  # the broker now queues for the gateway's session
    devices = tuple(f"dev-{i:03d}" for i in range(100))
    publisher.readings(devices, range(1, 51))  # 5,000 queued messages
    publisher.wait_sent()
    gw.start()
    try:
        wait_for(lambda: len(stored(influxdb, influx_db)) >= 5_000, timeout=120, what="the backlog in InfluxDB")
    finally:
        gw.stop()
    got = stored(influxdb, influx_db)
    assert got == {(d, 1, seq): 1 for d in devices for seq in range(1, 51)}
    peaks = [int(n) for n in re.findall(r"input_peak_waiting (\d+)", gw.log.read_text(errors="replace"))]
    assert peaks and max(peaks) <= 2 * 1000 + 1, peaks  # the default receive maximum is 1,000


def test_an_oversize_flood_is_set_aside_as_samples_and_costs_no_reading(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, publisher: Publisher, tmp_path: Path) -> None:
    """Five 2 MiB messages (a broker without a packet cap lets them through): each is refused,
    kept as a 1 KiB sample, and the spool stays small; the boards' readings all land once."""
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db)
    gw.start()
    try:
        big = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"big-{influx_db}")
        big.connect(mosquitto.host, mosquitto.port)
        big.loop_start()
        try:
            for _ in range(5):
                big.publish("sen/v1/lab/dev-a/telemetry", b"{" + b" " * (2 * 2**20) + b"}", qos=1).wait_for_publish(60)
        finally:
            big.loop_stop()
            big.disconnect()
        publisher.readings(DEVICES, range(1, 11))
        wait_for(lambda: len(stored(influxdb, influx_db)) >= len(DEVICES) * 10, timeout=60, what="the readings")
    finally:
        gw.stop()
    assert stored(influxdb, influx_db) == {(d, 1, seq): 1 for d in DEVICES for seq in range(1, 11)}
    db = sqlite3.connect(gw.spool / "spool.sqlite3")
    try:
        kept = db.execute("SELECT count(*), max(length(raw)) FROM dead_letters WHERE reason = 'oversize'").fetchone()
    finally:
        db.close()
    assert kept[0] == 5 and kept[1] <= 1024, kept
    size = sum(p.stat().st_size for p in gw.spool.glob("spool.sqlite3*"))
    assert size < 2 * 2**20, f"the spool holds {size} bytes after 10 MiB of oversize messages"
