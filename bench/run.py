"""Sen's benchmarks, side by side with the baselines, in one run.

    python -m bench.run [--quick] [--out bench/results] [--profile]

``--profile``: py-spy (the ``dev`` extra) samples the Sen gateway during the throughput run
and writes ``sen-profile.svg`` (flame graph, threads apart) and ``sen-profile-gil.txt``
(collapsed stacks of the thread holding the GIL: where the CPU goes) next to the results.

Starts its own Mosquitto and InfluxDB (``gateway.devstack``) for every contender, so no run
inherits another's queued messages, and prints a table, writes JSON and a PNG plot
(:mod:`bench.report`). The measurements: :mod:`bench.gateway_bench` (throughput, latency,
replay), :mod:`bench.serial_bench`, :mod:`bench.firmware_bench` and :mod:`bench.cellular_bench`
(each run as its own process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import serial_bench
from bench.gateway_bench import backlog, latency, replay, throughput
from bench.harness import ROOT


@dataclass(frozen=True, kw_only=True)
class Scale:
    throughput_readings: int
    naive_readings: int
    latency_s: float
    loads: tuple[int, ...]
    replay_readings: int
    serial_s: float
    backlog_messages: int
    backlog_rounds: int  # the bare subscriber and Sen drain each backlog this many times, in turn: medians
    worker_pairs: int  # --workers 1 then 2, this many times over: the ratio is of the medians


FULL = Scale(throughput_readings=300_000, naive_readings=30_000, latency_s=20.0, loads=(10, 100, 1000, 5000),
             replay_readings=1_000_000, serial_s=10.0, backlog_messages=100_000, backlog_rounds=5,
             worker_pairs=5)  # 3 of each gave 1.16x-1.57x, and 10/msg 0.62-0.95, over runs of one code: too few
QUICK = Scale(throughput_readings=5_000, naive_readings=1_000, latency_s=3.0, loads=(500,),
              replay_readings=20_000, serial_s=2.0, backlog_messages=2_000, backlog_rounds=2,
              worker_pairs=2)


def _compile() -> None:
    """Byte-compile the processes' own packages first, as an installed package is: with
    PYTHONDONTWRITEBYTECODE set (this project's development machine sets it) every start
    compiled them from source again, ~80 ms of each gateway's start (a backlog row lasts 1-5 s)
    that the baselines, whose paho comes compiled, did not pay."""
    import compileall

    for package in ("gateway", "ingest", "bench", "hardware"):
        compileall.compile_dir(ROOT / package, quiet=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where JSON and PNG go")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the Sen gateway during the throughput run (needs the dev extra)")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    _compile()
    profile_dir: Path | None = args.out if args.profile else None
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="sen-bench-") as tmp:
        work = Path(tmp)
        for kind in ("sen", "ceiling", "naive"):
            (work / kind).mkdir()
        print("throughput ...", file=sys.stderr)
        results["throughput"] = [
            throughput("ceiling", scale.throughput_readings, work),
            throughput("sen", scale.throughput_readings, work, profile_dir=profile_dir),
            throughput("naive", scale.naive_readings, work),
        ]
        print("backlog ...", file=sys.stderr)
        # The ratios' two sides again in later rounds, in turn (one draw of the ten-reading row gave
        # 0.91 and the next full run 0.76, same code); the other subscribers once.
        results["backlog"] = [backlog(kind, scale.backlog_messages // per, per, work)
                              for per in (1, 10) for turn in range(scale.backlog_rounds)
                              for kind in (("ceiling", "parse", "lean", "sen") if turn == 0
                                           else ("sen", "ceiling") if turn % 2 else ("ceiling", "sen"))]
        # Beside the bare subscriber's 1/msg row above. One drain of one worker ranged 4.8-6.9 s on this
        # machine over runs of the same code: the pairs interleave, so a slow spell hits both.
        print("backlog, workers ...", file=sys.stderr)
        results["backlog_workers"] = [backlog("sen", scale.backlog_messages, 1, work, "--workers", str(n))
                                      for _ in range(scale.worker_pairs) for n in (1, 2)]
        print("latency ...", file=sys.stderr)
        results["latency"] = [latency(rate, scale.latency_s, work) for rate in scale.loads]
        print("replay ...", file=sys.stderr)
        results["replay"] = replay(scale.replay_readings, work)
        print("serial ...", file=sys.stderr)
        results["serial"] = serial_bench.run(work, seconds=scale.serial_s)
    print("firmware ...", file=sys.stderr)
    results["firmware"] = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.firmware_bench", "--json"], capture_output=True, text=True, cwd=ROOT,
        timeout=600, check=True).stdout)
    print("ota ...", file=sys.stderr)  # the board's Ed25519 verifier and OTA receiver (bench/ota_bench.py)
    results["ota"] = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.ota_bench", "--json"], capture_output=True, text=True, cwd=ROOT,
        timeout=900, check=True).stdout)
    print("cellular ...", file=sys.stderr)
    results["cellular"] = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.cellular_bench", "--json", *(["--quick"] if args.quick else [])],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=True).stdout)
    from bench.report import write_report

    write_report(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
