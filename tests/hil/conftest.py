"""Hardware-in-the-loop: one test code path, a real board or a simulated one, over its serial port.

    pytest tests/hil --board-port /dev/ttyACM0      # a real board running Sen with "transport": "serial"
    pytest tests/hil --sim-board                    # a virtual board (the firmware on the unix port, on a pty)
    SEN_HIL=sim pytest                              # the same, how CI turns it on

Without either, the suite skips and says why.

The broker-restart test (test_broker_restart.py) needs a board in MQTT transport whose broker
the test controls. A simulated one gets the shared private Mosquitto (loopback) and its console
on a pty. A real board must be provisioned for MQTT with this machine's LAN address,
``sen provision --broker 192.168.1.10 --wifi-ssid ...`` (not ``--transport serial``: run the
other HIL tests with a serial-transport board), and the test told where to listen:

    SEN_HIL_BROKER=192.168.1.10:1883 pytest tests/hil/test_broker_restart.py --board-port /dev/ttyUSB0

The test then runs its own Mosquitto on that address (the board's console stays on the USB
port). Without SEN_HIL_BROKER the test skips for a real board and says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from gateway.devstack import Mosquitto
from hardware.vboard import VirtualBoard

INTERVAL_MS = 200


class Board:
    """What a test sees: the serial port, and power control where there is some."""

    def __init__(self, port: serial.Serial, virtual: VirtualBoard | None) -> None:
        self.port = port
        self.virtual = virtual
        self.seen: dict[int, set[int]] = {}  # boot -> seqs read, for acks that leave no gap

    def reset(self) -> None:
        if self.virtual is not None:
            self.virtual.restart()
        else:  # EN/RST through RTS, as esptool's hard reset does on USB-UART boards
            self.port.dtr = False
            self.port.rts = True
            self.port.rts = False


@pytest.fixture
def board(request: pytest.FixtureRequest, tmp_path: Path, micropython_bin: str) -> Iterator[Board]:
    real = request.config.getoption("--board-port")
    sim = request.config.getoption("--sim-board") or os.environ.get("SEN_HIL") == "sim"
    if real:
        try:
            port = serial.Serial(real, 115200, timeout=0.2, exclusive=True)
        except serial.SerialException as exc:
            pytest.fail(f"--board-port {real}: cannot open it ({exc}); is the board plugged in and the port free?")
        with port:
            yield Board(port, None)
        return
    if not sim:
        pytest.skip("hardware-in-the-loop: no board; give --board-port /dev/ttyUSB0, or --sim-board "
                    "(or SEN_HIL=sim) for a simulated one")
    config = {"site": "hil", "device_id": "hil-0000", "board": "sim", "transport": "serial", "ack": "e2e",
              "ack_timeout_ms": 1000, "broker": {"host": "127.0.0.1", "port": 1883}, "interval_ms": INTERVAL_MS,
              "batch_max": 1, "sim": {"seed": 1}}
    virtual = VirtualBoard(device="hil-0000", flash_dir=tmp_path / "flash", config=config, micropython=micropython_bin,
                           serial_link=tmp_path / "dev" / "ttySIM0")
    virtual.start()
    try:
        with serial.Serial(str(virtual.link.link if virtual.link else ""), 115200, timeout=0.2) as port:
            yield Board(port, virtual)
    finally:
        virtual.stop()


class MqttBoard(Board):
    """A board in MQTT transport: its console on the serial port, its readings through BROKER."""

    def __init__(self, port: serial.Serial, virtual: VirtualBoard | None, broker: Mosquitto) -> None:
        super().__init__(port, virtual)
        self.broker = broker


def _real_board_broker(tmp_path: Path) -> Mosquitto:
    where = os.environ.get("SEN_HIL_BROKER", "")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        pytest.skip("broker restart on a real board: provision it for MQTT with this machine's address "
                    "(sen provision --broker ADDR ...) and set SEN_HIL_BROKER=ADDR:PORT so the test runs "
                    "the broker the board talks to" + (f" (got {where!r})" if where else ""))
    broker = Mosquitto(tmp_path / "mosquitto", port=int(port))
    broker.host = host  # listen where the board was told to connect, not on loopback
    return broker


@pytest.fixture
def mqtt_board(request: pytest.FixtureRequest, tmp_path: Path, micropython_bin: str) -> Iterator[MqttBoard]:
    """A board publishing over MQTT to a broker the test may stop and start (same port)."""
    real = request.config.getoption("--board-port")
    sim = request.config.getoption("--sim-board") or os.environ.get("SEN_HIL") == "sim"
    if real:
        broker = _real_board_broker(tmp_path)
        broker.start()
        try:
            port = serial.Serial(real, 115200, timeout=0.2, exclusive=True)
        except serial.SerialException as exc:
            broker.stop()
            pytest.fail(f"--board-port {real}: cannot open it ({exc}); is the board plugged in and the port free?")
        try:
            with port:
                yield MqttBoard(port, None, broker)
        finally:
            broker.stop()
        return
    if not sim:
        pytest.skip("hardware-in-the-loop: no board; give --board-port /dev/ttyUSB0, or --sim-board "
                    "(or SEN_HIL=sim) for a simulated one")
    broker = request.getfixturevalue("mosquitto")
    config = {"site": "hil", "device_id": "hil-mqtt-0000", "board": "sim", "transport": "mqtt", "ack": "e2e",
              "ack_timeout_ms": 1000, "broker": {"host": broker.host, "port": broker.port, "keepalive": 10},
              "interval_ms": INTERVAL_MS, "batch_max": 10, "sim": {"seed": 2}}
    # MQTT transport, console on a pty: the serial link carries only what the board prints
    virtual = VirtualBoard(device="hil-mqtt-0000", flash_dir=tmp_path / "flash", config=config,
                           micropython=micropython_bin, serial_link=tmp_path / "dev" / "ttySIM0")
    virtual.start()
    try:
        with serial.Serial(str(virtual.link.link if virtual.link else ""), 115200, timeout=0.2) as port:
            yield MqttBoard(port, virtual, broker)
    finally:
        virtual.stop()
