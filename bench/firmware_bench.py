"""Firmware benchmarks on the MicroPython unix port, each beside a baseline in the same run.

    python -m bench.firmware_bench [--json]

- heap: one simulated board (BME280 + SHT31 + DHT20, precompiled .mpy as `sen sim` builds
  them), serial transport with `ack: puback` (no broker needed: a written frame counts as
  delivered), run with `-X heapsize=64K` (the target: it runs there, peak ~52 KiB), 56K
  (the edge: about the least it needs, a run may fail there) and 96K (plenty: the same
  peak, so the 64K figure is not squeezed); the peak is gc.mem_alloc() right after a
  collection, before each envelope (the firmware's own figure, "Sen done: ... peak heap N B").
- wire: MQTT payload bytes per reading (envelope size / readings) for batch 1 and batch 10,
  from the frames the board wrote (the serial frame's "site" left out: MQTT carries it in
  the topic), beside plain json.dumps of the same envelope as a dict (default separators);
  each also "without s": the same envelopes with every reading's sensor name ("s":"sht31",)
  taken out, i.e. what they cost before readings carried it. Every envelope carries the
  flash id, "fid":FID, (17 B with FID's 10 digits: the board's flash holds FID, see below).
- encode: µs per reading inside MicroPython (time.ticks_us over many envelopes): Sen's path
  (each reading encoded once when sampled, appended to the RAM outbox, the envelope built by
  copying them into the preallocated buffer) beside json.dumps of the same envelope dict;
  with and without each reading's "s".

Prints a table; `--json` prints one JSON object instead (bench/run.py reads it).
`--modules` prints instead what each firmware module costs in heap once imported (in the
order an MQTT board imports them; gc.mem_alloc() after a collection) and the qstr pools:
the table to read when cutting RAM.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hardware.sim import find_micropython
from hardware.vboard import FIRMWARE_MAIN, REPO_ROOT, build_mpy

HEAPS = ("56K", "64K", "96K")
TARGET_HEAP, TARGET_PEAK = "64K", 48 * 1024  # the memory issue: runs in 64K, peak under 48 KiB
READINGS = 60
ENCODE_ENVELOPES = 300
# The flash id every run's flash holds (DESIGN.md's example): a fresh flash draws one at
# random, from 1 to 10 digits (10 in 77% of draws), so the bytes per reading would move by a
# few hundredths from run to run; this is the longest kind.
FID = 2918374651

# Runs inside MicroPython: argv = lib dir, batch size, envelopes, sensor name ("-": none),
# fid; prints "sen base" in µs.
_ENCODE = """
import sys, json, time, gc
sys.path.insert(1, sys.argv[1])
import bufs, payload
from outbox import Outbox
B = int(sys.argv[2]); N = int(sys.argv[3]); S = None if sys.argv[4] == "-" else sys.argv[4]
FID = int(sys.argv[5])
M = {"temp_c": 21.53, "rh_pct": 55.2, "p_hpa": 1006.53}
D = {"heap_free": 41232, "outbox": B, "dropped": 0, "reset": "power", "rssi_dbm": -50}
ob = Outbox(None, 4 * B)
gc.collect()
t0 = time.ticks_us()
for e in range(N):
    for i in range(B):
        s = e * B + i + 1
        ob.push(1, s, s * 1000, payload.reading(s, 1763800000000 + s, s * 1000, M, S))
    a, b, n, nxt, boot, last = payload.build(ob, bufs.env, B, 1, N * B * 1000, D, "sim-0000", FID, "sim", None)
    ob.advance(ob.cursor, nxt, n)
    ob.ack(1, s)
t_sen = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
t0 = time.ticks_us()
for e in range(N):
    r = []
    for i in range(B):
        s = e * B + i + 1
        r.append({"seq": s, "ts": 1763800000000 + s, "m": M} if S is None else
                 {"seq": s, "ts": 1763800000000 + s, "s": S, "m": M})
    env = {"v": 1, "dev": "sim-0000", "fid": FID, "boot": 1, "up": N * B * 1000, "lo": e * B + 1,
           "board": "sim", "r": r, "d": D}
    out = json.dumps(env)
t_base = time.ticks_diff(time.ticks_us(), t0)
print("RESULT", t_sen / (N * B), t_base / (N * B), len(bytes(bufs.env[a:b])), len(out))
"""


def _config(batch: int) -> dict[str, Any]:
    return {"site": "bench", "device_id": "sim-0000", "board": "sim", "transport": "serial",
            "ack": "puback", "broker": {"host": "127.0.0.1", "port": 1},
            "interval_ms": 20, "batch_max": batch, "max_readings": READINGS, "sim": {"seed": 1}}


# Runs inside MicroPython: argv = .mpy dir, simdev dir, modules; one line per module.
_MODULES = """
import sys, gc, micropython
sys.path.insert(1, sys.argv[1])
sys.path.append(sys.argv[2])
gc.collect()
b = gc.mem_alloc()
print("%-12s %6d" % ("(start)", b))
for name in sys.argv[3:]:
    __import__(name)
    gc.collect()
    a = gc.mem_alloc()
    print("%-12s %6d" % (name, a - b))
    b = a
print("%-12s %6d" % ("(total)", b))
micropython.qstr_info()
"""
# an MQTT board's imports, in the order it makes them (boot modules are dropped after boot)
BOARD_MODULES = ("bufs", "asyncio", "log", "payload", "outbox", "sensors", "simdev", "hal_sim",
                 "drv_bme280", "drv_sht", "app", "mqtt")


def run_script(micropython: str, script: str, args: list[str], timeout: float,
               heap: str | None = None) -> subprocess.CompletedProcess[str]:
    """SCRIPT (MicroPython source) run with ARGS from a folder of its own: MicroPython puts the
    script's folder first on its import path, so a shared one (/tmp) could lend it another
    program's stray app.mpy or at.mpy in place of the firmware's."""
    with tempfile.TemporaryDirectory(prefix="sen-fwscript-") as tmp:
        path = Path(tmp) / "script.py"
        path.write_text(script)
        return subprocess.run([micropython, *(["-X", f"heapsize={heap}"] if heap else []), str(path), *args],
                              capture_output=True, text=True, timeout=timeout)


def modules(micropython: str, mpy: Path) -> str:
    done = run_script(micropython, _MODULES, [str(mpy), str(REPO_ROOT / "hardware" / "simdev"),
                                              *BOARD_MODULES], 60, heap="1M")
    return "heap per module (B, .mpy, 64-bit unix port)\n" + done.stdout + done.stderr


def run_board(micropython: str, mpy: Path | None, heap: str, batch: int) -> dict[str, Any]:
    """One board run; its peak heap and the telemetry frames it wrote."""
    with tempfile.TemporaryDirectory(prefix="sen-fwbench-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(_config(batch)))
        # a flash that holds FID (a counter of 0: this run is its boot 1)
        (Path(tmp) / "sen_fid.txt").write_text(f"{FID}\n")
        (Path(tmp) / "sen_boot.txt").write_text("0\n")
        env = {"SEN_MPY": str(mpy)} if mpy is not None else {}
        done = subprocess.run([micropython, "-X", f"heapsize={heap}", str(FIRMWARE_MAIN)], cwd=tmp,
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = done.stdout.decode(errors="replace")
    peak = re.search(r"^Sen done: .* peak heap (\d+) B", out, re.M)
    frames = [ln[5:ln.rfind(" ")] for ln in out.splitlines() if ln.startswith("SEN1 ")]
    envs = [f for f in frames if '"kind"' not in f]
    return {"heap": heap, "exit": done.returncode, "peak_heap_bytes": int(peak.group(1)) if peak else None,
            "memory_error": "MemoryError" in out, "envelopes": envs}


_SENSOR = re.compile(r'"s":"[a-z0-9_-]{1,32}",')


def wire(envs: list[str], with_s: bool = True) -> dict[str, float]:
    """MQTT payload bytes per reading (site left out), and the json.dumps baseline; without
    with_s, every reading's "s" is taken out of both first."""
    sen = base = readings = 0
    for text in envs:
        doc = json.loads(text)
        text = text.replace(f'"site":"{doc["site"]}",', "", 1)
        if not with_s:
            text = _SENSOR.sub("", text)
            for r in doc["r"]:
                r.pop("s", None)
        sen += len(text.encode())
        doc.pop("site")
        base += len(json.dumps(doc).encode())
        readings += len(doc["r"])
    return {"sen": round(sen / readings, 1), "json_dumps": round(base / readings, 1),
            "envelopes": len(envs), "readings": readings}


def encode(micropython: str, batch: int, sensor: str = "sht31") -> dict[str, float]:
    """µs and envelope bytes per reading, each reading with "s": sensor ("" for none)."""
    done = run_script(micropython, _ENCODE, [str(REPO_ROOT / "firmware" / "lib"), str(batch),
                                             str(ENCODE_ENVELOPES), sensor or "-", str(FID)], 300)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"encode bench failed: {done.stdout}{done.stderr}")
    _, sen, base, sen_len, base_len = line.split()
    return {"sen_us": round(float(sen), 1), "json_dumps_us": round(float(base), 1),
            "sen_bytes": int(sen_len), "json_dumps_bytes": int(base_len)}


def measure() -> dict[str, Any]:
    micropython = find_micropython()
    mpy = build_mpy(Path(tempfile.gettempdir()) / "sen-mpy", micropython)
    heap = {}
    for h in HEAPS:
        r = run_board(micropython, mpy, h, 10)
        heap[h] = {k: r[k] for k in ("exit", "peak_heap_bytes", "memory_error")}
    got = heap[TARGET_HEAP]
    met = got["exit"] == 0 and got["peak_heap_bytes"] is not None and got["peak_heap_bytes"] < TARGET_PEAK
    result: dict[str, Any] = {"heap": heap, "heap_target": {"heapsize": TARGET_HEAP, "peak_below": TARGET_PEAK,
                                                            "met": met},
                              "bytes_per_reading": {}, "encode_us_per_reading": {}}
    # "batchN": readings as the firmware sends them, each with its sensor's "s";
    # "batchN, without s": the same without it (bench/report.py prints a row for each key)
    for batch in (1, 10):
        r = run_board(micropython, mpy, "1M", batch)
        for key, with_s in ((f"batch{batch}", True), (f"batch{batch}, without s", False)):
            result["bytes_per_reading"][key] = wire(r["envelopes"], with_s)
            result["encode_us_per_reading"][key] = encode(micropython, batch, "sht31" if with_s else "")
    return result


def _table(r: dict[str, Any]) -> str:
    lines = ["Firmware (MicroPython unix port)", "", "heap        exit  peak in use (B)  MemoryError"]
    for h, v in r["heap"].items():
        lines.append(f"{h:<10} {v['exit']:>5}  {v['peak_heap_bytes'] or '-':>15}  {v['memory_error']}")
    t = r["heap_target"]
    lines.append(f"target: runs in {t['heapsize']} with the peak under {t['peak_below']} B: "
                 f"{'met' if t['met'] else 'MISSED'}")
    lines += ["", "                     bytes/reading (Sen | json.dumps)   encode µs/reading (Sen | json.dumps)"]
    for b in r["bytes_per_reading"]:
        w, e = r["bytes_per_reading"][b], r["encode_us_per_reading"][b]
        lines.append(f"{b:<19} {w['sen']:>10} | {w['json_dumps']:<10}            "
                     f"{e['sen_us']:>10} | {e['json_dumps_us']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.firmware_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--modules", action="store_true", help="print the heap each module costs")
    args = ap.parse_args(argv)
    if args.modules:
        micropython = find_micropython()
        mpy = build_mpy(Path(tempfile.gettempdir()) / "sen-mpy", micropython)
        if mpy is None:
            raise SystemExit("mpy-cross not found")
        print(modules(micropython, mpy))
        return {}
    r = measure()
    print(json.dumps(r, indent=1) if args.json else _table(r))
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
