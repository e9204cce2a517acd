"""A cellular board (transport ``cellular``) beside the same board on WiFi, in one run.

    python -m bench.cellular_bench [--json] [--quick]

The real firmware on the MicroPython unix port, one SHT31 (two metrics per reading),
``ack: puback`` (a reading is done at the broker's PUBACK: no gateway needed), one Mosquitto.

- bytes per reading, batch 1 and 10: the cellular board drives the simulated SIM7080G
  (``hardware/modem_sim7080.py``) over its UART; counted are the UART's bytes both ways (AT
  commands, echoes, results, URCs, the payloads) and what the modem's MQTT session puts on
  its TCP link both ways ("air": CONNECT, SUBSCRIBE, every PUBLISH's framing and payload,
  PUBACKs, PINGs; TCP/IP, TLS and the radio's own overhead not included). The WiFi board
  (``mqtt.py``) counts the same MQTT bytes on its TCP link. Both through a counting TCP relay
  in front of the broker; figures are totals over the run (start-up included) / readings.
- readings per second through a 115200-baud UART: the simulated modem paces both ways of
  its UART to 11,520 B/s (8N1); three simulated sensors sampling every 10 ms (faster than the
  line), batch 10; readings counted at a subscriber over a steady window. The cell's own
  round trip is not modelled (the simulated modem's broker is local): one publish is in flight
  at a time, so a real cell's latency lowers this figure.
- heap: the batch-10 cellular run at ``-X heapsize=64K`` (the firmware's target), three times:
  how many finished and a finished run's peak (``Sen done: ... peak heap``), and the last
  2,000 characters of each run that did not finish (``heap.failed`` in the JSON: why it
  stopped); and the smallest heap (1K steps, one run each) a cellular board finishes in.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import Mosquitto
from hardware.faultproxy import FaultProxy
from hardware.modem_sim7080 import Sim7080
from hardware.sim import find_micropython
from hardware.vboard import VirtualBoard, build_mpy

BAUD = 115_200
TARGET_HEAP = "64K"
# Runs at TARGET_HEAP: near the edge a board finishes in some runs and not in others (where the
# heap is in pieces differs), so one run that finished would say more than it knows.
HEAP_RUNS = 3
_TAIL = 2000  # characters of a run's console kept when it did not finish
SENSOR = [{"type": "sht31", "addr": 0x44}]
THREE = [{"type": "bme280", "addr": 0x76}, {"type": "sht31", "addr": 0x44}, {"type": "dht20", "addr": 0x38}]


class Counting(FaultProxy):
    """A TCP relay to the broker that counts the bytes each way (up: towards the broker)."""

    up = down = 0

    def _moved(self, dst: socket.socket, n: int) -> None:  # dst just took them: it is connected
        if dst.getpeername()[1] == self.upstream[1]:
            self.up += n
        else:
            self.down += n


class Readings:
    """A subscriber to every board's telemetry: readings (and their times) as they arrive."""

    def __init__(self, broker: Mosquitto) -> None:
        self.times: list[tuple[float, int]] = []
        self._m = paho.Client(CallbackAPIVersion.VERSION2, client_id="cell-bench-count")
        self._m.on_message = lambda c, u, msg: self.times.append(
            (time.monotonic(), len(json.loads(msg.payload).get("r", []))))
        self._m.on_connect = lambda c, u, f, rc, p: c.subscribe("sen/v1/bench/+/telemetry", 1)
        self._m.connect("127.0.0.1", broker.port)
        self._m.loop_start()

    def between(self, t0: float, t1: float) -> int:
        return sum(n for t, n in self.times if t0 <= t < t1)

    def close(self) -> None:
        self._m.loop_stop()
        self._m.disconnect()


def _config(port: int, cellular: bool, batch: int, readings: int, interval_ms: int,
            sensors: list[dict[str, Any]], sim_port: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"site": "bench", "device_id": "cell-0000" if cellular else "wifi-0000", "board": "sim",
                         "ack": "puback", "broker": {"host": "127.0.0.1", "port": port, "keepalive": 60},
                         "interval_ms": interval_ms, "batch_max": batch, "max_readings": readings,
                         "sim": {"seed": 1}, "sensors": sensors}
    if cellular:
        c["transport"] = "cellular"
        c["cell"] = {"apn_preset": "viettel", "sim_port": sim_port, "reg_poll_ms": 200, "backoff_ms": 500,
                     "backoff_max_ms": 2000, "boot_ms": 3000}
    return c


def run_board(work: Path, broker: Mosquitto, mpy: Path | None, *, cellular: bool, batch: int = 10,
              heap: str = "256K", readings: int = 60, interval_ms: int = 20, baud: int | None = None,
              sensors: list[dict[str, Any]] | None = None, window_s: float = 0.0) -> dict[str, Any]:
    """One board until it has its READINGS PUBACKed (or, with window_s, for a steady window)."""
    micropython = find_micropython()
    relay = Counting(("127.0.0.1", broker.port))
    relay.start()
    modem = Sim7080(reg_s=0.3, boot_s=0.2, pdp_s=0.1, baud=baud, name="bench").start() if cellular else None
    name = f"{'cell' if cellular else 'wifi'}-b{batch}-{heap}-{int(time.monotonic() * 1000)}"
    config = _config(relay.port, cellular, batch, 0 if window_s else readings, interval_ms, sensors or SENSOR,
                     modem.port if modem else 0)
    board = VirtualBoard(device=config["device_id"], flash_dir=work / name, config=config, micropython=micropython,
                         heapsize=heap, mpy_dir=mpy)
    counter = Readings(broker) if window_s else None
    rate = uart_rate = window = None
    try:
        board.start()
        if counter is not None:
            time.sleep(min(window_s, 3.0) + 1.5)  # start-up, the first batches: steady state only
            t0, u0 = time.monotonic(), modem.uart_rx if modem else 0
            time.sleep(window_s)
            t1, u1 = time.monotonic(), modem.uart_rx if modem else 0
            window = counter.between(t0, t1)
            rate, uart_rate = round(window / (t1 - t0), 1), round((u1 - u0) / (t1 - t0))
            code = 0
        else:
            deadline = time.monotonic() + 120
            code = None
            while code is None and time.monotonic() < deadline:
                code = board.poll()
                time.sleep(0.05)
    finally:
        board.stop()
        relay.close()
        if modem is not None:
            modem.close()
        if counter is not None:
            counter.close()
    out = board.console_log.read_text(errors="replace")
    done = re.search(r"^Sen done: (\d+) readings acked in (\d+) envelopes.* peak heap (\d+) B", out, re.M)
    n = int(done.group(1)) if done else 0
    r: dict[str, Any] = {"exit": code, "memory_error": "MemoryError" in out, "readings": n,
                         "peak_heap_bytes": int(done.group(3)) if done else None}
    if code != 0 or r["memory_error"] or not done:  # what the board said last: why it did not finish
        r["console_tail"] = out[-_TAIL:]
    if rate is not None:
        r.update(readings=window, readings_per_s=rate, uart_up_bytes_per_s=uart_rate,
                 line_bytes_per_s=BAUD // 10 if baud else None)
    elif n:
        r["air_up"], r["air_down"] = round(relay.up / n, 1), round(relay.down / n, 1)
        if modem is not None:
            r["uart_up"], r["uart_down"] = round(modem.uart_rx / n, 1), round(modem.uart_tx / n, 1)
    return r


def smallest_heap(work: Path, broker: Mosquitto, mpy: Path | None, lo: int = 48, hi: int = 96) -> int | None:
    """The smallest -X heapsize (KiB, 1K steps: one run each, by halving) in which the batch-10
    cellular board finishes. Near the edge a board finishes in some runs and not in others
    (where the heap is in pieces differs): firmware/CELLULAR.md, Memory, has runs per size."""
    ok = None
    while lo <= hi:
        mid = (lo + hi) // 2
        r = run_board(work, broker, mpy, cellular=True, heap=f"{mid}K", readings=30)
        if r["exit"] == 0:
            ok, hi = mid, mid - 1
        else:
            lo = mid + 1
    return ok


def measure(quick: bool = False) -> dict[str, Any]:
    micropython = find_micropython()
    with tempfile.TemporaryDirectory(prefix="sen-cellbench-") as tmp:
        work = Path(tmp)
        mpy = build_mpy(Path(tempfile.gettempdir()) / "sen-mpy", micropython)  # shared with firmware_bench
        broker = Mosquitto(work / "mosquitto")
        broker.start()
        try:
            n = 10 if quick else 60
            res: dict[str, Any] = {"readings": n, "bytes_per_reading": {}}
            for batch in (1, 10):
                res["bytes_per_reading"][f"batch{batch}"] = {
                    "cellular": run_board(work, broker, mpy, cellular=True, batch=batch, readings=n),
                    "wifi": run_board(work, broker, mpy, cellular=False, batch=batch, readings=n)}
            res["uart_115200"] = run_board(work, broker, mpy, cellular=True, batch=10, interval_ms=10, baud=BAUD,
                                           sensors=THREE, window_s=1.0 if quick else 8.0)
            runs = [run_board(work, broker, mpy, cellular=True, heap=TARGET_HEAP, readings=n)
                    for _ in range(1 if quick else HEAP_RUNS)]
            done = [r for r in runs if r["exit"] == 0 and not r["memory_error"]]
            res["heap"] = dict((done or runs)[0], heapsize=TARGET_HEAP, runs=len(runs), finished=len(done),
                               failed=[r.get("console_tail", "") for r in runs if r not in done])
            res["heap"]["smallest_k"] = None if quick else smallest_heap(work, broker, mpy)
        finally:
            broker.stop()
    return res


def _table(r: dict[str, Any]) -> str:
    lines = [f"Cellular board (simulated SIM7080G) beside WiFi, one SHT31, {r['readings']} readings, B/reading",
             "batch    cell UART up/down   cell air up/down   WiFi TCP up/down"]
    for b, v in r["bytes_per_reading"].items():
        c, w = v["cellular"], v["wifi"]
        lines.append(f"{b:<8} {c.get('uart_up')!s:>8} / {c.get('uart_down')!s:<8} {c.get('air_up')!s:>7} / "
                     f"{c.get('air_down')!s:<8} {w.get('air_up')!s:>7} / {w.get('air_down')}")
    u, h = r["uart_115200"], r["heap"]
    lines.append(f"through a 115200-baud UART: {u['readings_per_s']} readings/s (UART up "
                 f"{u.get('uart_up_bytes_per_s')} B/s of {u['line_bytes_per_s']})")
    lines.append(f"heap at {h['heapsize']}: finished {h['finished']} of {h['runs']} runs, peak {h['peak_heap_bytes']} B"
                 f", MemoryError {h['memory_error']}; smallest heap that finishes: {h['smallest_k'] or '-'}K")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.cellular_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    r = measure(args.quick)
    print(json.dumps(r, indent=1) if args.json else _table(r))
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
