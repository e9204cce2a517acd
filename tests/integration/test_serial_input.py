"""USB serial boards end to end: `sen sim --serial` (the firmware on the MicroPython VM, one
pseudo-terminal per board) → SerialInput + Handler + spool → InfluxDB 1.x, exactly once, also
across an unplug/replug of a port and garbage on the line."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import serial
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from gateway.service.serial_frame import encode
from gateway.service.handler import Message
from gateway.service.serial_input import SerialInput
from tests.integration.helpers import sen_process, stop, wait_for
from tests.integration.serial_gateway import serial_gateway

BOARDS = 2
READINGS = 40


def _count(influxdb: InfluxDB, db: str) -> int:
    rows = influxdb.rows('SELECT count("seq") FROM "telemetry"', db)
    return int(rows[0]["count"]) if rows else 0


def _run_boards(influxdb: InfluxDB, influx_db: str, tmp_path: Path, plan: list[dict[str, object]]) -> dict[str, int]:
    """`sen sim --serial --boards 2` with PLAN, the serial gateway in-process; checks exactly once."""
    dev = tmp_path / "dev"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    with serial_gateway(str(dev / "ttySIM*"), influx_url=influxdb.url, database=influx_db,
                        spool_dir=tmp_path / "spool") as gw:
        sim = sen_process("sim", "--serial", "--boards", str(BOARDS), "--readings", str(READINGS),
                          "--interval-ms", "250", "--batch-max", "5", "--ack-timeout-ms", "1000",
                          "--site", "usb", "--state-dir", str(tmp_path / "boards"), "--dev-dir", str(dev),
                          "--fault-plan", str(plan_file), log=tmp_path / "sim.log")
        try:
            assert sim.wait(timeout=90) == 0, (tmp_path / "sim.log").read_text()
        finally:
            stop(sim, signal.SIGINT, timeout=10)
        wait_for(lambda: _count(influxdb, influx_db) >= BOARDS * READINGS, timeout=15,
                 what=f"{BOARDS * READINGS} points in InfluxDB")
        counts = gw.serial.counts()
    rows = influxdb.rows('SELECT * FROM "telemetry" GROUP BY *', influx_db)
    assert len(rows) == BOARDS * READINGS
    for i in range(BOARDS):
        mine = [r for r in rows if r["device"] == f"sim-{i:04d}"]
        assert sorted(r["seq"] for r in mine) == list(range(1, READINGS + 1)), f"board {i}"
        assert all(r["site"] == "usb" for r in mine)
    assert counts["acks_sent"] >= 1
    return counts


@pytest.mark.integration
@pytest.mark.firmware
def test_two_serial_boards_land_every_reading_exactly_once(
    influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    counts = _run_boards(influxdb, influx_db, tmp_path, [])
    assert counts["opens"] == BOARDS and counts.get("bad_crc", 0) == 0, counts


@pytest.mark.integration
@pytest.mark.firmware
def test_two_serial_boards_exactly_once_across_unplug_and_garbage(
    influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    counts = _run_boards(influxdb, influx_db, tmp_path, [
        {"at_s": 0.5, "fault": "garbage", "board": 1, "bytes": 400, "seed": 7},
        {"at_s": 0.7, "fault": "unplug", "board": 0},
        {"at_s": 1.7, "fault": "replug", "board": 0},
    ])
    assert counts.get("disconnects", 0) >= 1 and counts["opens"] >= BOARDS + 1, counts
    log = (tmp_path / "sim.log").read_text()
    assert "unplugged" in log and "plugged" in log


def _pty(tmp_path: Path, name: str) -> tuple[int, Path]:
    """A pseudo-terminal pair: the master fd, and a stable symlink to the slave."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    link = tmp_path / name
    link.symlink_to(os.ttyname(slave))
    os.close(slave)
    return master, link


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, str]] = []
        self.event = threading.Event()

    def __call__(self, message: Message, done: Callable[[None], None]) -> None:
        self.calls.append((message.topic, message.payload, message.source))
        self.event.set()
        done(None)


def test_random_bytes_on_one_port_and_a_busy_port_leave_the_other_port_reading(tmp_path: Path) -> None:
    noisy, noisy_link = _pty(tmp_path, "ttyA")
    good, good_link = _pty(tmp_path, "ttyB")
    busy, busy_link = _pty(tmp_path, "ttyC")
    holder = serial.Serial(str(busy_link), exclusive=True)  # another program holds ttyC
    recorder = _Recorder()
    serial_in = SerialInput(recorder, str(tmp_path / "tty*"), scan_interval_s=0.1)
    serial_in.start()
    try:
        wait_for(lambda: len(serial_in.open_ports()) == 2, timeout=5, what="two ports open")
        os.write(noisy, os.urandom(3000) + b"\n\nSEN1 {\"v\":1} 00000000\n")
        frame = encode({"v": 1, "site": "lab", "dev": "b", "boot": 1, "up": 5,
                        "r": [{"seq": 1, "up": 5, "m": {"t": 1.0}}]})
        os.write(good, b"MicroPython v1.24 boot banner\r\n" + frame)
        wait_for(recorder.event.is_set, timeout=5, what="the good frame delivered")
        wait_for(lambda: serial_in.counts(str(noisy_link)).get("bad_crc", 0) >= 1, timeout=5,
                 what="the noisy port's bad CRC counted")
        assert recorder.calls[0][0] == "sen/v1/lab/b/telemetry"
        assert recorder.calls[0][2] == f"serial:{good_link}"
        assert serial_in.counts(str(busy_link)).get("open_errors", 0) >= 1
        assert str(busy_link) not in serial_in.open_ports()
    finally:
        serial_in.stop()
        holder.close()
        for fd in (noisy, good, busy):
            os.close(fd)


@pytest.mark.integration
@pytest.mark.firmware
def test_sen_gateway_run_serial_lands_every_reading_once_across_a_replug(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    """The two commands a user types: `sen gateway run --serial GLOB` and `sen sim --serial`."""
    dev = tmp_path / "dev"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"at_s": 0.8, "fault": "unplug", "board": 1},
                                {"at_s": 1.8, "fault": "replug", "board": 1}]))
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"serial-{influx_db}", "--serial", str(dev / "ttySIM*"), log=log)
    try:
        sim = sen_process("sim", "--serial", "--boards", str(BOARDS), "--readings", "20", "--interval-ms", "100",
                          "--batch-max", "5", "--ack-timeout-ms", "1000", "--site", "usb",
                          "--state-dir", str(tmp_path / "boards"), "--dev-dir", str(dev),
                          "--fault-plan", str(plan), log=tmp_path / "sim.log")
        try:
            assert sim.wait(timeout=90) == 0, (tmp_path / "sim.log").read_text() + log.read_text()
        finally:
            stop(sim, signal.SIGINT, timeout=10)
        wait_for(lambda: _count(influxdb, influx_db) >= BOARDS * 20, timeout=20, what="40 points in InfluxDB")
    finally:
        code = stop(gateway, timeout=30)
    assert code == 0, log.read_text()
    rows = influxdb.rows('SELECT * FROM "telemetry" GROUP BY *', influx_db)
    for i in range(BOARDS):
        assert sorted(r["seq"] for r in rows if r["device"] == f"sim-{i:04d}") == list(range(1, 21)), f"board {i}"
    assert len(rows) == BOARDS * 20
    assert "Traceback" not in log.read_text()


@pytest.mark.integration
def test_a_usb_board_is_shown_offline_while_its_port_is_lost(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    """A USB board has no MQTT last will: `sen gateway run --serial` publishes its last status as
    offline when its port is lost, and again as it was when the board is heard from once more
    (a board that did not reboot sends no new status)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    master, link = _pty(dev, "ttyUSB0")
    states = _StatusWatch(mosquitto, "usbstate")
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"usbstate-{influx_db}", "--serial", str(dev / "ttyUSB*"), log=log)

    def opened(times: int) -> bool:
        return log.read_text().count(f"serial port {link} open") >= times

    try:
        wait_for(lambda: opened(1), timeout=20, what="the port open")
        os.write(master, encode({"kind": "status", "site": "usbstate", "dev": "b", "state": "online", "ver": "1.4.0"}))
        wait_for(lambda: states.last("b") == "online", timeout=10, what="the board online")
        os.close(master)  # the cable is pulled
        link.unlink()
        wait_for(lambda: states.last("b") == "offline", timeout=10, what="the board offline")
        master, link = _pty(dev, "ttyUSB0")  # plugged again; the board ran on, it does not say hello again
        wait_for(lambda: opened(2), timeout=20, what="the port open again")
        os.write(master, encode({"v": 1, "site": "usbstate", "dev": "b", "boot": 1, "up": 5,
                                 "r": [{"seq": 1, "ts": 1_700_000_000_000, "m": {"t": 1.0}}]}))
        wait_for(lambda: states.last("b") == "online", timeout=10, what="the board online again")
    finally:
        code = stop(gateway, timeout=30)
        states.close()
        os.close(master)
    assert code == 0, log.read_text()
    assert states.seen["b"] == ["online", "offline", "online"], states.seen
    offline = states.docs["b"][1]
    assert offline["ver"] == "1.4.0" and offline["dev"] == "b", offline  # what it runs, kept
    assert "lost: published offline" in log.read_text()


class _StatusWatch:
    """Every status the broker delivers on sen/v1/SITE/+/status, per device, in order."""

    def __init__(self, broker: Mosquitto, site: str) -> None:
        self.seen: dict[str, list[str]] = {}
        self.docs: dict[str, list[dict[str, object]]] = {}
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-watch")
        self._client.on_message = self._message
        self._client.connect(broker.host, broker.port)
        self._client.subscribe(f"sen/v1/{site}/+/status", qos=1)
        self._client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            doc, device = json.loads(message.payload), message.topic.split("/")[3]
            self.docs.setdefault(device, []).append(doc)
            self.seen.setdefault(device, []).append(doc["state"])

    def last(self, device: str) -> str | None:
        return (self.seen.get(device) or [None])[-1]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
