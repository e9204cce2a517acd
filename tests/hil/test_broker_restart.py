"""Reconnect after a broker restart, on a real board (--board-port + SEN_HIL_BROKER) or a simulated
one (--sim-board / SEN_HIL=sim): the board's console on its serial port, its readings through the
real gateway into InfluxDB, the broker stopped for a few seconds and started again on its port."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import serial
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from tests.hil.conftest import INTERVAL_MS, MqttBoard
from tests.integration.helpers import sen_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

OUTAGE_S = 3.0
_BANNER = re.compile(r"Sen firmware \S+ device=(\S+) boot=(\d+)")
_TX = re.compile(r"tx boot (\d+) seq \.\.(\d+)")


class Console:
    """The board's serial console, read line by line in a thread, each line with its arrival time."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hil-console", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                line = self.port.readline()
            except serial.SerialException:
                return
            if line:
                with self._lock:
                    self.lines.append((time.time(), line.decode(errors="replace").rstrip()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return [text for _, text in self.lines[mark:]]

    def wait(self, pattern: str, *, after: int, timeout: float) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for m in map(regex.search, self.since(after)) if m), None)

        match: re.Match[str] | None
        try:
            match = wait_for(found, timeout=timeout, what=f"console line /{pattern}/", interval=0.05)
        except AssertionError as err:
            raise AssertionError(f"{err}; console:\n" + "\n".join(self.since(after)[-30:])) from None
        assert match is not None
        return match


class StatusWatcher:
    """A paho subscriber with a persistent session on the board's status topic: a status the
    board publishes while this client is still reconnecting is queued for it by the broker."""

    def __init__(self, broker: Mosquitto) -> None:
        self.states: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hil-status-{uuid.uuid4().hex[:8]}",
                                  clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe("sen/v1/+/+/status", qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(doc, dict):
            doc["_topic"] = msg.topic
            with self._lock:
                self.states.append((time.time(), doc))

    def online_since(self, device: str, boot: int, since: float) -> bool:
        with self._lock:
            return any(t >= since and d.get("state") == "online" and d.get("boot") == boot
                       and d["_topic"].endswith(f"/{device}/status") for t, d in self.states)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def console(mqtt_board: MqttBoard) -> Iterator[Console]:
    reader = Console(mqtt_board.port)
    yield reader
    reader.close()


def _readings(influxdb: InfluxDB, db: str, device: str, boot: int) -> list[dict[str, Any]]:
    return influxdb.rows(f"SELECT * FROM \"telemetry\" WHERE \"device\" = '{device}' AND \"boot\" = {boot}", db)


def _contiguous_past(rows: list[dict[str, Any]], seq: int) -> bool:
    seqs = {r["seq"] for r in rows}
    return bool(seqs) and max(seqs) > seq and seqs == set(range(1, max(seqs) + 1))


def test_board_reconnects_after_a_broker_restart_and_loses_nothing(
    mqtt_board: MqttBoard, console: Console, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
) -> None:
    broker = mqtt_board.broker
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", broker.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"hil-{influx_db}", "--reconnect-max", "1",
                          "--flush-interval", "0.2", "--batch-size", "50", log=log)
    status = StatusWatcher(broker)
    try:
        wait_for(lambda: "subscribed to sen/v1/+/+/telemetry" in log.read_text(errors="replace"),
                 timeout=30, what="the gateway's subscription")
        if mqtt_board.virtual is not None:
            # The boot the fixture started, seen before the mark: a board slow to start (a loaded
            # machine) printed its first banner after the gateway subscribed, and that boot was
            # taken for the reset's (the test then waited for the wrong boot to come back online).
            console.wait(_BANNER.pattern, after=0, timeout=20)
        mark = console.mark()
        mqtt_board.reset()  # the board boots with the gateway listening
        banner = console.wait(_BANNER.pattern, after=mark, timeout=20)
        device, boot = banner.group(1), int(banner.group(2))
        console.wait(r"mqtt: connected to", after=mark, timeout=20)
        wait_for(lambda: status.online_since(device, boot, 0), timeout=10, what=f"{device} online")
        wait_for(lambda: len(_readings(influxdb, influx_db, device, boot)) >= 3, timeout=20,
                 what="the board's first readings in InfluxDB")

        # The broker goes away for a few seconds; the board keeps sampling into its outbox.
        mark = console.mark()
        stopped_at = time.time()
        broker.stop()
        console.wait(r"mqtt: (connection lost|error|.* down)", after=mark, timeout=20)
        time.sleep(OUTAGE_S)  # the outage itself: readings are taken during it
        sent_before = max((int(m.group(2)) for m in map(_TX.search, console.since(0))
                           if m and int(m.group(1)) == boot), default=0)
        started_at = time.time()
        broker.start()

        # It comes back by itself: the console says so, the status goes online again.
        console.wait(r"mqtt: connected to", after=mark, timeout=30)
        wait_for(lambda: status.online_since(device, boot, started_at), timeout=15,
                 what=f"{device} online again after the broker restart")
        def caught_up() -> bool:
            rows = _readings(influxdb, influx_db, device, boot)
            return _contiguous_past(rows, sent_before) and max(r["time"] for r in rows) > started_at * 1000 + 500

        wait_for(caught_up, timeout=30, what="every reading, up to after the restart, in InfluxDB")
        rows = _readings(influxdb, influx_db, device, boot)
    except AssertionError:
        print(f"gateway log:\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        status.close()
        gateway.terminate()
        gateway.wait(timeout=30)

    # Every reading exactly once by (device, boot, seq), no hole, those of the outage included.
    twice = [key for key, n in Counter((r["boot"], r["seq"]) for r in rows).items() if n > 1]
    assert not twice, f"readings stored more than once: {twice[:10]}"
    seqs = sorted(r["seq"] for r in rows)
    assert seqs == list(range(1, len(seqs) + 1)), "a hole in the seqs"
    during = [r for r in rows if stopped_at * 1000 + 200 <= r["time"] <= started_at * 1000 - 200]
    expected = OUTAGE_S * 1000 / INTERVAL_MS / 2  # at least half the cadence of one sensor
    assert len(during) >= expected, f"{len(during)} readings stamped inside the outage, expected >= {expected}"
