"""Readings per second through one USB serial board, against the line's own limit.

One virtual board (the real firmware on the MicroPython VM, sampling every 10 ms, the fastest its config allows) on a
pseudo-terminal paced to 115200 baud (8N1, 11,520 bytes/s) like a USB-UART bridge, read by
`sen gateway run --serial` and counted in InfluxDB. The same board on an unpaced pty shows
what the firmware and the gateway could carry on a faster line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.devstack import InfluxDB, Mosquitto
from hardware.procs import stop_process
from hardware.sim import find_micropython
from hardware.vboard import VirtualBoard, build_mpy

DB = "bench"
BAUD = 115_200


def _count(influx: InfluxDB) -> int:
    rows = influx.rows('SELECT count("seq") FROM "telemetry"', DB)
    return int(rows[0]["count"]) if rows else 0


def measure(work: Path, *, baud: int | None, seconds: float) -> dict[str, Any]:
    """Steady-state readings/s and bytes/reading of one serial board at BAUD (None: unpaced)."""
    name = f"serial-{baud or 'unpaced'}"
    root = work / name
    broker, influx = Mosquitto(root / "mosquitto"), InfluxDB(root / "influxdb")
    broker.start()
    influx.start()
    influx.create_database(DB)
    micropython = find_micropython()
    link = root / "dev" / "ttySIM0"
    config = {"site": "bench", "device_id": "serial-0000", "board": "sim", "transport": "serial", "ack": "e2e",
              "ack_timeout_ms": 2000, "broker": {"host": "127.0.0.1", "port": 1883}, "interval_ms": 10,
              "batch_max": 10, "sim": {"seed": 1}}
    board = VirtualBoard(device="serial-0000", flash_dir=root / "flash", config=config, micropython=micropython,
                         serial_link=link, baud=baud, mpy_dir=build_mpy(work / "mpy", micropython), heapsize="256K")
    with open(root / "gateway.log", "ab") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "gateway", "run", "--mqtt", broker.url, "--influx", influx.url,
             "--database", DB, "--spool", str(root / "spool"), "--serial", str(link), "--flush-interval", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        board.start()
        time.sleep(2.0)  # boot, first acks: measure the steady state only
        assert board.link is not None
        n0, b0, t0 = _count(influx), board.link.sent, time.monotonic()
        time.sleep(seconds)
        n1, b1, t1 = _count(influx), board.link.sent, time.monotonic()
    finally:
        board.stop()
        stop_process(gateway, timeout=30)
        influx.stop()
        broker.stop()
    readings = n1 - n0
    per_reading = (b1 - b0) / readings if readings else float("nan")
    return {"baud": baud, "seconds": round(t1 - t0, 2), "readings": readings,
            "readings_per_s": round(readings / (t1 - t0), 1), "bytes_per_reading": round(per_reading, 1),
            "bytes_per_s": round((b1 - b0) / (t1 - t0))}


def run(work: Path, *, seconds: float = 8.0) -> dict[str, Any]:
    paced = measure(work, baud=BAUD, seconds=seconds)
    unpaced = measure(work, baud=None, seconds=seconds)
    line_bytes_per_s = BAUD / 10
    limit = line_bytes_per_s / paced["bytes_per_reading"] if paced["readings"] else float("nan")
    return {"paced": paced, "unpaced": unpaced, "line_limit_readings_per_s": round(limit, 1),
            "line_bytes_per_s": line_bytes_per_s}
