"""Identity under faults: the same device name at two sites and a board re-flashed to boot 1,
through a kill -9 of the gateway mid-stream (real gateway process, Mosquitto and InfluxDB)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from tests.faults.kit import GatewayProcess
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE_MS = 1_763_800_000_000
# (site, fid, readings): two sites share the name dev-x; site a's board is re-flashed (fid 2).
STREAMS = (("a", 1, 40), ("b", 7, 40), ("a", 2, 40))


def test_two_sites_and_a_reflashed_board_through_a_kill_9_land_exactly_once(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db)
    gw.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"boards-{influx_db}", clean_session=False)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    infos: list[mqtt.MQTTMessageInfo] = []

    def publish() -> None:
        paced = threading.Event()
        for seq in range(1, 41):
            for n, (site, fid, _) in enumerate(STREAMS):
                # Each stream its own second of the minute, so a point's time tells its stream.
                doc = {"v": 1, "dev": "dev-x", "fid": fid, "boot": 1, "up": 1000 + seq,
                       "r": [{"seq": seq, "ts": BASE_MS + n * 1_000_000 + seq, "m": {"temp_c": float(n)}}]}
                infos.append(client.publish(f"sen/v1/{site}/dev-x/telemetry", json.dumps(doc), qos=1))
            paced.wait(0.05)

    sending = threading.Thread(target=publish)
    sending.start()
    try:
        wait_for(lambda: len(_points(influxdb, influx_db)) > 10, timeout=30, what="progress before the kill")
        gw.kill()  # kill -9 mid-stream
        gw.start()
        sending.join(timeout=60)
        wait_for(lambda: all(i.is_published() for i in infos), timeout=60, what="every PUBACK")
        wait_for(lambda: len(_points(influxdb, influx_db)) >= 120, timeout=60, what="120 points")
    finally:
        client.loop_stop()
        client.disconnect()
        gw.stop()
    points = _points(influxdb, influx_db)
    want = Counter({(site, n, seq): 1 for n, (site, _, _) in enumerate(STREAMS) for seq in range(1, 41)})
    assert points == want


def _points(influxdb: InfluxDB, db: str) -> Counter[tuple[str, int, int]]:
    """(site, stream, seq) of every point: the stream from the point's time (see publish)."""
    try:
        rows = influxdb.rows('SELECT "seq", "temp_c" FROM "telemetry" GROUP BY "site"', db)
    except Exception:  # noqa: BLE001 — InfluxDB may be restarting
        return Counter()
    return Counter((r["site"], int(r["temp_c"]), int(r["seq"])) for r in rows)
