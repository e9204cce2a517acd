"""Hardware-in-the-loop: one test code path, a real board or a simulated one, over its serial port.

    pytest tests/hil --board-port /dev/ttyACM0      # a real board running Sen with "transport": "serial"
    pytest tests/hil --sim-board                    # a virtual board (the firmware on the unix port, on a pty)
    SEN_HIL=sim pytest                              # the same, how CI turns it on

Without either, the suite skips and says why.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

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
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
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
    micropython = shutil.which("micropython") or shutil.which("micropython", path=str(Path(sys.executable).parent))
    if micropython is None:
        pytest.fail("micropython not found: run ./run.sh setup")
    config = {"site": "hil", "device_id": "hil-0000", "board": "sim", "transport": "serial", "ack": "e2e",
              "ack_timeout_ms": 1000, "broker": {"host": "127.0.0.1", "port": 1883}, "interval_ms": INTERVAL_MS,
              "batch_max": 1, "sim": {"seed": 1}}
    virtual = VirtualBoard(device="hil-0000", flash_dir=tmp_path / "flash", config=config, micropython=micropython,
                           serial_link=tmp_path / "dev" / "ttySIM0")
    virtual.start()
    try:
        with serial.Serial(str(virtual.link.link if virtual.link else ""), 115200, timeout=0.2) as port:
            yield Board(port, virtual)
    finally:
        virtual.stop()
