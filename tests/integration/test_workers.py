"""`sen gateway run --workers N`: receiving processes on a shared subscription under one supervisor,
against the real Mosquitto and InfluxDB 1.x.

Every reading is in InfluxDB exactly once by (device, boot, seq) when a worker is killed -9 mid-stream
(the supervisor starts it again) and when the whole gateway is; readings with uptime only keep one
clock anchor whichever worker gets them; the retained acks reach every device's last seq (the
supervisor acks the union of what the workers committed); the spools a killed gateway left are written
at the next start, and the sessions of workers a smaller run no longer has are taken over (their
share of the telemetry would otherwise wait in the broker); `sen status` shows the merged counters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from tests.faults.kit import BASE_MS, FaultProxy, GatewayProcess, Publisher, assert_exactly_once
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

DEVICES = ("dev-a", "dev-b", "dev-c", "dev-up")  # dev-up sends uptime only: its anchor is shared


class Boards(Publisher):
    """The kit's publisher at a site of the test's own (no other test's retained acks reach its
    devices); ``dev-up``'s readings carry no ts (the gateway anchors them)."""

    def __init__(self, broker: Mosquitto, client_id: str, site: str) -> None:
        super().__init__(broker, client_id)
        self.site = site

    def reading(self, device: str, seq: int) -> None:
        reading: dict[str, object] = {"seq": seq, "ts": BASE_MS + seq * 1000, "m": {"temp_c": seq / 10}}
        if device == "dev-up":
            reading = {"seq": seq, "up": 1000 + seq * 1000, "m": {"temp_c": seq / 10}}
        doc = {"v": 1, "dev": device, "boot": 1, "up": 1000 + seq * 1000, "r": [reading]}
        self.infos.append(self.client.publish(f"sen/v1/{self.site}/{device}/telemetry", json.dumps(doc), qos=1))


class Acks:
    """The retained end-to-end acks, as the boards would read them."""

    def __init__(self, broker: Mosquitto, client_id: str, site: str) -> None:
        self.seen: dict[str, int] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"sen/v1/{site}/+/ack", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            self.seen[message.topic.split("/")[3]] = json.loads(message.payload)["seq"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def boards(mosquitto: Mosquitto, influx_db: str) -> Iterator[Boards]:
    pub = Boards(mosquitto, f"boards-{influx_db}", influx_db.replace("_", "-"))
    yield pub
    pub.close()


@pytest.fixture
def proxy(influxdb: InfluxDB) -> Iterator[FaultProxy]:
    p = FaultProxy(influxdb)
    yield p
    p.close()


def _running(pid: int) -> bool:
    try:  # a zombie (not reaped yet) has stopped too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _status(gw: GatewayProcess) -> str:
    return subprocess.run([sys.executable, "-m", "gateway", "status", "--spool", str(gw.spool)],
                          capture_output=True, text=True, timeout=30, check=True).stdout


def test_a_worker_killed_mid_stream_is_started_again_and_nothing_is_lost_or_doubled(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, boards: Boards, tmp_path: Path) -> None:
    acks = Acks(mosquitto, f"acks-{influx_db}", boards.site)
    gw = GatewayProcess(tmp_path, "gw", mosquitto, influxdb.url, influx_db, workers=2)
    seqs = range(1, 101)
    sending = threading.Thread(target=boards.readings, args=(DEVICES, seqs), kwargs={"pace_s": 0.05})  # >= 5 s
    try:
        gw.start()
        sending.start()
        wait_for(lambda: gw.worker_status()["total"]["readings"] >= 60, timeout=30, what="readings committed")
        victim = gw.worker_status()["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        assert sending.is_alive(), "the kill should land mid-stream"
        wait_for(lambda: (w := gw.worker_status()["workers"][1])["restarts"] == 1 and w["running"]
                 and w["pid"] != victim, timeout=30, what="the supervisor to start worker 1 again")
        sending.join(timeout=60)
        boards.wait_sent()
        assert_exactly_once(influxdb, influx_db, DEVICES, seqs)
        wait_for(lambda: acks.seen == {d: seqs[-1] for d in DEVICES}, timeout=30,
                 what="every device's retained ack at its last seq")
        status = gw.worker_status()
        assert all(w["received"] > 0 for w in status["workers"])  # both took a share
        wait_for(lambda: "GATEWAY gw-" in (out := _status(gw)) and "2 workers, 1 restarts" in out
                 and f"{boards.site}/dev-up" in out, timeout=10, what="sen status with the workers' counters")
    finally:
        acks.close()
        gw.stop()
    total = gw.worker_status()["total"]
    assert total["worker_restarts"] == 1 and total["spool_depth"] == 0
    # What the killed worker committed but had not acked came back to its session: counted as a
    # duplicate by its spool, so the readings counted are the readings sent.
    assert total["readings"] == len(DEVICES) * len(seqs)
    assert gw.depth_and_dead() == (0, 0)
    assert gw.spooled_keys() == len(DEVICES) * len(seqs)
    last = influxdb.rows('SELECT last("readings") AS readings, last("workers") AS workers, '
                         'last("worker_restarts") AS restarts FROM "gateway"', influx_db)[0]
    assert (last["readings"], last["workers"], last["restarts"]) == (len(DEVICES) * len(seqs), 2, 1)


def test_gateway_killed_with_full_spools_then_run_with_one_worker_writes_them_and_takes_over_the_sessions(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, boards: Boards, proxy: FaultProxy,
        tmp_path: Path) -> None:
    proxy.fail_with = 503  # InfluxDB refuses: the readings wait in the workers' spools
    two = GatewayProcess(tmp_path, "gw", mosquitto, proxy.url, influx_db, "--influx-api", "v1", workers=2)
    try:
        two.start()
        pids = [w["pid"] for w in two.worker_status()["workers"]]
        boards.readings(DEVICES, range(1, 41))
        boards.wait_sent()
        wait_for(lambda: two.spooled_keys() == len(DEVICES) * 40, timeout=30, what="every reading spooled")
        assert len(list(two.spool.glob("workers/*/spool.sqlite3"))) == 2
    finally:
        two.kill()  # kill -9 of the supervisor: its workers stop when their pipe closes
    wait_for(lambda: not any(_running(pid) for pid in pids), timeout=30, what="the orphaned workers to stop")
    boards.readings(DEVICES, range(41, 61))  # the broker routes a share to each worker's session
    boards.wait_sent()
    proxy.fail_with = None
    one = GatewayProcess(tmp_path, "gw", mosquitto, proxy.url, influx_db, "--influx-api", "v1", workers=1)
    try:
        one.start()
        boards.readings(DEVICES, range(61, 81))  # to the single gateway now: no share left with the workers
        boards.wait_sent()
        assert_exactly_once(influxdb, influx_db, DEVICES, range(1, 81))
        wait_for(lambda: not (one.spool / "workers" / "0").exists() and not (one.spool / "workers" / "1").exists(),
                 timeout=30, what="both workers retired (spool written, folder removed)")
        assert "worker 0 retired" in one.log.read_text() and "worker 1 retired" in one.log.read_text()
    finally:
        one.stop()
    assert one.depth_and_dead() == (0, 0)
