"""Sen's benchmarks, side by side with the baselines, in one run.

    python -m bench.run [--quick] [--out bench/results] [--profile]

``--profile``: py-spy (the ``dev`` extra) samples the Sen gateway during the throughput run
and writes ``sen-profile.svg`` (flame graph, threads apart) and ``sen-profile-gil.txt``
(collapsed stacks of the thread holding the GIL: where the CPU goes) next to the results.

Starts its own Mosquitto and InfluxDB (gateway/devstack.py) for every contender, so no run
inherits another's queued messages, and prints a table, writes JSON and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.devstack import InfluxDB, Mosquitto

from bench import serial_bench
from bench.loadgen import Load, Publisher, envelopes

ROOT = Path(__file__).resolve().parent.parent
DB = "bench"
_POLL_S = 0.25


@dataclass(frozen=True, kw_only=True)
class Scale:
    throughput_readings: int
    naive_readings: int
    latency_s: float
    loads: tuple[int, ...]
    replay_readings: int
    serial_s: float


FULL = Scale(throughput_readings=300_000, naive_readings=30_000, latency_s=20.0, loads=(1000, 5000),
             replay_readings=1_000_000, serial_s=10.0)
QUICK = Scale(throughput_readings=5_000, naive_readings=1_000, latency_s=3.0, loads=(500,),
              replay_readings=20_000, serial_s=2.0)


def _count(influx: InfluxDB, where: str = "") -> int:
    rows = influx.rows(f'SELECT count("seq") FROM "telemetry" {where}', DB)
    return int(rows[0]["count"]) if rows else 0


def _wait(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _proc_stats(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds used so far) of process PID, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def _servers(work: Path, name: str) -> Iterator[tuple[Mosquitto, InfluxDB]]:
    broker, influx = Mosquitto(work / name / "mosquitto"), InfluxDB(work / name / "influxdb")
    broker.start()
    influx.start()
    try:
        influx.create_database(DB)
        yield broker, influx
    finally:
        influx.stop()
        broker.stop()


@contextmanager
def _process(args: list[str], log: Path, ready: Callable[[], bool]) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        _wait(lambda: proc.poll() is None and ready(), 30, f"{args[2:4]} to be ready (log {log})")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PROFILE: list[Path] = []  # set by --profile: where the throughput run's profiles go


@contextmanager
def _profiled(proc: subprocess.Popen[bytes], out: Path) -> Iterator[None]:
    """py-spy attached to PROC until the block ends: a flame graph and GIL-holder stacks."""
    spy = str(Path(sys.executable).parent / "py-spy")
    runs = [subprocess.Popen([spy, "record", "--pid", str(proc.pid), "--rate", "250", "--threads",
                              *extra, "--output", str(out / name)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for extra, name in (([], "sen-profile.svg"), (["--gil", "--format", "raw"], "sen-profile-gil.txt"))]
    try:
        yield
    finally:
        for run in runs:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=60)


def _gateway(broker: Mosquitto, influx: InfluxDB, work: Path) -> Any:
    log = work / "gateway.log"
    return _process([sys.executable, "-m", "gateway", "gateway", "run", "--mqtt", broker.url, "--influx", influx.url,
                     "--database", DB, "--spool", str(work / "spool")], log,
                    lambda: log.exists() and "subscribed to sen/v1/+/+/telemetry" in log.read_text())


def _baseline(kind: str, broker: Mosquitto, influx: InfluxDB, work: Path) -> Any:
    counts = work / f"{kind}.count"
    return _process([sys.executable, "-m", "bench.baselines", kind, "--mqtt-port", str(broker.port),
                     "--influx", influx.url, "--database", DB, "--count-file", str(counts)],
                    work / f"{kind}.log", counts.exists)


def throughput(kind: str, readings: int, work: Path) -> dict[str, Any]:
    """Readings per second from the first publish to the last reading confirmed."""
    load = Load(readings=readings)
    messages = envelopes(load, base_ms=int(time.time() * 1000) - 86_400_000)
    with _servers(work, kind) as (broker, influx):
        consumer = (_gateway(broker, influx, work / kind) if kind == "sen"
                    else _baseline(kind, broker, influx, work / kind))
        with consumer as proc, (_profiled(proc, PROFILE[0]) if PROFILE and kind == "sen" else _nothing()):
            publisher = Publisher(broker.host, broker.port, f"load-{kind}")
            peak_rss = 0
            try:
                started = publisher.publish_all(messages)
                if kind == "ceiling":
                    counter: Callable[[], int] = lambda: int((work / kind / "ceiling.count").read_text() or 0)
                else:
                    counter = lambda: _count(influx)
                deadline = started + 600
                done = 0
                while done < readings and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                    done = counter()
                    peak_rss = max(peak_rss, _proc_stats(proc.pid)[0])
                seconds = time.monotonic() - started
            finally:
                publisher.close()
    return {"kind": kind, "readings": readings, "confirmed": done, "seconds": round(seconds, 2),
            "readings_per_s": round(done / seconds), "peak_rss_mib": round(peak_rss / 2**20, 1),
            "devices": load.devices, "per_envelope": load.per_envelope}


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def latency(rate: int, seconds: float, work: Path) -> dict[str, Any]:
    """Publish-to-queryable latency of probe readings under a steady background load."""
    load = Load(readings=int(rate * seconds))
    messages = envelopes(load, base_ms=int(time.time() * 1000) - 86_400_000)
    with _servers(work, f"latency-{rate}") as (broker, influx):
        with _gateway(broker, influx, work / f"latency-{rate}") as proc:
            background = Publisher(broker.host, broker.port, "load")
            probe = Publisher(broker.host, broker.port, "probe")
            sent: dict[int, float] = {}
            seen: dict[int, float] = {}
            stop = threading.Event()

            def send_probes() -> None:
                seq = 0
                while not stop.wait(0.1):
                    seq += 1
                    body = {"v": 1, "dev": "probe", "boot": 1, "up": 1, "board": "bench",
                            "r": [{"seq": seq, "ts": int(time.time() * 1000), "m": {"temp_c": 1.0}}]}
                    sent[seq] = time.monotonic()
                    probe.publish_all([("sen/v1/bench/probe/telemetry", json.dumps(body).encode())])

            def watch() -> None:
                while not stop.is_set() or len(seen) < len(sent):
                    rows = influx.rows("""SELECT last("seq") FROM "telemetry" WHERE "device" = 'probe'""", DB)
                    now = time.monotonic()
                    last = int(rows[0]["last"]) if rows else 0
                    for s in range(1, last + 1):
                        seen.setdefault(s, now)
                    if stop.is_set() and now - max(sent.values(), default=now) > 30:
                        return
                    time.sleep(0.02)

            threads = [threading.Thread(target=send_probes), threading.Thread(target=watch)]
            for t in threads:
                t.start()
            rss0, cpu0 = _proc_stats(proc.pid)
            wall0 = time.monotonic()
            peak_rss = rss0
            sampler_stop = threading.Event()

            def sample() -> None:
                nonlocal peak_rss
                while not sampler_stop.wait(0.5):
                    peak_rss = max(peak_rss, _proc_stats(proc.pid)[0])

            sampler = threading.Thread(target=sample)
            sampler.start()
            background.publish_all(messages, rate_per_s=rate, readings_per_message=load.per_envelope)
            stop.set()
            _, cpu1 = _proc_stats(proc.pid)
            wall = time.monotonic() - wall0
            sampler_stop.set()
            for t in (*threads, sampler):
                t.join()
            background.close()
            probe.close()
    lat = sorted(seen[s] - sent[s] for s in sent if s in seen)
    return {"rate": rate, "seconds": seconds, "probes": len(sent), "probes_seen": len(lat),
            "p50_ms": round(_pct(lat, 50) * 1000, 1), "p99_ms": round(_pct(lat, 99) * 1000, 1),
            "rss_mib": round(peak_rss / 2**20, 1), "cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1)}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def replay(readings: int, work: Path) -> dict[str, Any]:
    """Time to drain a spool of READINGS lines into InfluxDB after an outage."""
    from ingest.spool import Entry, Spool

    spool_dir = work / "replay" / "spool"
    spool = Spool(spool_dir)
    base = int(time.time() * 1000) - 86_400_000
    chunk = 10_000
    for start in range(0, readings, chunk):
        spool.commit([Entry(line=f"telemetry,site=bench,device=dev-{i % 1000:04d},board=bench "
                                 f"temp_c=21.5,seq={i}i {base + i}")
                      for i in range(start, min(readings, start + chunk))])
    spool.close()
    with _servers(work, "replay") as (broker, influx):
        started = time.monotonic()
        log = work / "replay" / "gateway.log"
        with _process([sys.executable, "-m", "gateway", "gateway", "run", "--mqtt", broker.url, "--influx",
                       influx.url, "--database", DB, "--spool", str(spool_dir)], log, lambda: True):
            _wait(lambda: _count(influx) >= readings, 1800, "the spool to drain")
        seconds = time.monotonic() - started
    return {"readings": readings, "seconds": round(seconds, 2), "readings_per_s": round(readings / seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where JSON and PNG go")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the Sen gateway during the throughput run (needs the dev extra)")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        PROFILE.append(args.out)
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
            throughput("sen", scale.throughput_readings, work),
            throughput("naive", scale.naive_readings, work),
        ]
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
    from bench.report import write_report

    write_report(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
