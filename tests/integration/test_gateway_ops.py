"""Operations, with real processes: `sen tail`, the MQTT watchdog, and the `gateway`
measurement (the gateway's own counters, written to InfluxDB 1.x every stats interval)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto, free_port
from tests.faults.kit import GatewayProcess, Publisher
from tests.integration.helpers import sen_process, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def tail_process(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "tail.log"
    proc = sen_process("tail", "--mqtt", mosquitto.url, "--duration", "60", log=log)
    yield proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_sen_tail_prints_live_readings_and_refusals(
        mosquitto: Mosquitto, tail_process: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, log = tail_process
    device = "tail-dev"
    pub = Publisher(mosquitto, "tail-boards")
    try:
        # `sen tail` has a clean QoS0 session: what is published before it subscribed is not
        # shown. Probe with readings (seq 1000+) until one shows; then it is live.
        probes = iter(range(1000, 2000))

        def live() -> bool:
            pub.reading(device, next(probes))
            return f"lab/{device} boot 1 seq 1" in log.read_text(errors="replace")

        wait_for(live, timeout=20, what="sen tail to print a probe reading", interval=0.3)
        for seq in range(1, 6):
            pub.reading(device, seq)
        pub.client.publish(f"sen/v1/lab/{device}/telemetry", b"not json", qos=1)
        pub.wait_sent()
        wait_for(lambda: "refused" in log.read_text(errors="replace"), timeout=10,
                 what="sen tail to print the refused message")
    finally:
        pub.close()
    proc.terminate()  # SIGTERM: a clean stop
    assert proc.wait(timeout=10) == 0
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if line.startswith(f"lab/{device} boot 1 seq ")
             and int(line.split(" seq ")[1].split()[0]) < 1000]
    assert [line.split(" seq ")[1].split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    assert all(line.endswith(f"temp_c={s / 10:g}") for s, line in enumerate(lines, 1))
    assert f"lab/{device}: refused (" in log.read_text(errors="replace")


def _gateway_points(influxdb: InfluxDB, db: str, gateway: str) -> list[dict[str, Any]]:
    rows = influxdb.rows(f"SELECT * FROM \"gateway\" WHERE \"gateway\" = '{gateway}'", db)
    return sorted(rows, key=lambda r: int(r["time"]))


def test_watchdog_logs_and_counts_each_silence(
        mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "wd", mosquitto, influxdb.url, influx_db, "--watchdog", "1",
                        "--stats-interval", "1")
    gw.start()
    pub = Publisher(mosquitto, f"wd-boards-{influx_db}")
    warning = "no MQTT message for"
    try:
        wait_for(lambda: warning in gw.log.read_text(errors="replace"), timeout=15,
                 what="the watchdog's warning")
        # Counted, and the count reaches InfluxDB with the gateway measurement.
        wait_for(lambda: any(int(p["watchdog_trips"]) >= 1 for p in
                             _gateway_points(influxdb, influx_db, f"wd-{influx_db}")),
                 timeout=15, what="watchdog_trips >= 1 in the gateway measurement")
        assert gw.log.read_text(errors="replace").count(warning) == 1  # once per silence
        pub.reading(f"wd-{influx_db}".replace("_", "-"), 1)  # a message ends the silence
        pub.wait_sent()
        wait_for(lambda: gw.log.read_text(errors="replace").count(warning) == 2, timeout=15,
                 what="the watchdog's warning for the second silence")
        wait_for(lambda: any(int(p["watchdog_trips"]) == 2 for p in
                             _gateway_points(influxdb, influx_db, f"wd-{influx_db}")),
                 timeout=15, what="watchdog_trips == 2 in the gateway measurement")
    finally:
        pub.close()
        gw.stop()


def test_gateway_measurement_counts_agree_with_what_was_sent(
        influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    # A private broker: `received` counts every message, retained ones included, so no
    # other test's retained acks may be around.
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    gw = GatewayProcess(tmp_path, "gm", broker, influxdb.url, influx_db, "--stats-interval", "1")
    devices = ("gm-a", "gm-b")
    n = 2 * 15
    try:
        gw.start()
        pub = Publisher(broker, "gm-boards")
        try:
            pub.readings(devices, range(1, 16))
            pub.wait_sent()
        finally:
            pub.close()

        def settled() -> list[dict[str, Any]]:
            points = _gateway_points(influxdb, influx_db, f"gm-{influx_db}")
            done = [p for p in points if int(p["readings"]) == n and int(p["spool_depth"]) == 0]
            return points if len(done) >= 2 else []

        points = wait_for(settled, timeout=20, what="two gateway points after every reading")
    finally:
        gw.stop()
        broker.stop()
    for prior, point in enumerate(points):
        # Never more written than committed: the readings plus the earlier gateway points.
        assert int(point["written"]) <= int(point["readings"]) + prior, point
        assert int(point["duplicates"]) == 0 and int(point["rejected"]) == 0, point
        assert int(point["set_aside"]) == 0 and int(point["write_failures"]) == 0, point
        if int(point["readings"]) == n and int(point["spool_depth"]) == 0:
            # All written: the n readings and every gateway point before this one.
            assert int(point["written"]) == n + prior, (prior, point)
            # Received: the n telemetry messages and the gateway's own retained acks, which
            # it reads back (its ack subscription); nothing else was on this broker. Acks go
            # out on the gateway's tick too, so some may still be on their way back.
            assert n <= int(point["received"]) <= n + int(point["acks_published"]), point
    assert int(points[-1]["acks_published"]) >= len(devices)


@pytest.mark.integration
def test_gateway_run_serves_the_web_page_and_refuses_a_taken_port(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url, "--database",
                          influx_db, "--spool", str(tmp_path / "spool"), "--client-id", f"web-{influx_db}",
                          "--web", str(port), log=log)
    try:
        page = wait_for(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=20, what="the web page")
        assert b"<html" in page.lower()
        # A second gateway asking for the same port says so in one line and stops.
        second = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url, "--database",
                             influx_db, "--spool", str(tmp_path / "spool2"), "--web", str(port),
                             log=tmp_path / "second.log")
        assert second.wait(timeout=30) == 2
        err = (tmp_path / "second.log").read_text()
        assert f"web_port: cannot serve on 127.0.0.1:{port}" in err and "Traceback" not in err
    finally:
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=30) == 0, log.read_text()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the page's closed connections linger
        sock.bind(("127.0.0.1", port))  # nobody listens any more: released on stop


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bytes(response.read())
    except (urllib.error.URLError, OSError):
        return None


@pytest.mark.integration
def test_a_busy_devices_acks_coalesce_and_the_last_covers_everything(
        influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    gw = GatewayProcess(tmp_path, "co", broker, influxdb.url, influx_db, "--stats-interval", "1")
    acks: list[dict[str, int]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ack-watcher")
    watcher.on_message = lambda c, u, m: acks.append(json.loads(m.payload))
    try:
        gw.start()
        watcher.connect(broker.host, broker.port)
        watcher.subscribe("sen/v1/+/co-a/ack", qos=1)
        watcher.loop_start()
        pub = Publisher(broker, "co-board")
        started = time.monotonic()
        try:
            pub.readings(("co-a",), range(1, 201))  # 200 messages as fast as the broker takes them
            pub.wait_sent()
        finally:
            pub.close()
        wait_for(lambda: acks and acks[-1]["seq"] == 200, timeout=20, what="an ack covering seq 200")
        took = time.monotonic() - started
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        gw.stop()
        broker.stop()
    assert [a["seq"] for a in acks] == sorted(a["seq"] for a in acks), "acks only grow"
    # One ack per 0.5 s (the default ack_interval_s) and the retained one read on subscribing.
    assert len(acks) <= took / 0.5 + 2, f"{len(acks)} acks in {took:.1f} s: they should coalesce"


@pytest.mark.integration
def test_an_ack_the_device_missed_is_said_again_when_it_resends(
        influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    """A board that lost its ack (a modem dropping the URC) sends its readings again after its
    timeout: the duplicates do not move the ack, but the gateway publishes it again (not more
    often than every 5 s), instead of leaving the board to resend forever."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    gw = GatewayProcess(tmp_path, "rep", broker, influxdb.url, influx_db)
    live: list[tuple[float, int]] = []  # (when, seq) of acks delivered live, not the retained copy
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ack-watcher")
    watcher.on_message = lambda c, u, m: None if m.retain else live.append(
        (time.monotonic(), json.loads(m.payload)["seq"]))
    pub = Publisher(broker, "rep-board")
    try:
        gw.start()
        watcher.connect(broker.host, broker.port)
        watcher.subscribe("sen/v1/+/rep-a/ack", qos=1)
        watcher.loop_start()
        pub.readings(("rep-a",), range(1, 4))
        pub.wait_sent()
        wait_for(lambda: live and live[-1][1] == 3, timeout=20, what="the ack of seq 3")
        first, n = live[-1][0], len(live)
        pub.readings(("rep-a",), range(1, 4))  # at once: within 5 s of that ack, not said again
        pub.wait_sent()
        time.sleep(1.5)
        assert len(live) == n, live
        time.sleep(max(0.0, first + 5.2 - time.monotonic()))
        pub.readings(("rep-a",), range(1, 4))  # the board's timeout: it sends them again
        pub.wait_sent()
        wait_for(lambda: len(live) == n + 1, timeout=5, what="the same ack said again")
        assert live[n][1] == 3 and live[n][0] - first >= 5.0, live
    finally:
        pub.close()
        watcher.loop_stop()
        watcher.disconnect()
        gw.stop()
        broker.stop()
