"""What every gateway benchmark stands on: its own servers, its processes, polling, /proc figures.

- :func:`servers`: a fresh Mosquitto and InfluxDB (``gateway.devstack``) per contender, so no
  run inherits another's queued messages; the ``bench`` database is created.
- :func:`gateway` / :func:`baseline`: the Sen gateway (``python -m gateway gateway run``) or a
  baseline (:mod:`bench.baselines`) as a child process, yielded once it is ready and stopped
  (SIGTERM, then SIGKILL after a minute) when the block ends.
- :func:`profiled`: py-spy attached to a process for the block (``--profile``).
- :func:`proc_stats`: resident memory and CPU seconds of a process, from /proc.
- :func:`count` / :func:`landed`: readings in InfluxDB; how far a run has got, asked cheaply.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from gateway.devstack import InfluxDB, Mosquitto
from hardware.procs import stop_process

ROOT = Path(__file__).resolve().parent.parent
DB = "bench"
_STOP_TIMEOUT_S = 60.0

Child = AbstractContextManager[subprocess.Popen[bytes]]


def count(influx: InfluxDB, where: str = "") -> int:
    """Readings (points of ``telemetry``) InfluxDB holds in the bench database."""
    rows = influx.rows(f'SELECT count("seq") FROM "telemetry" {where}', DB)
    return int(rows[0]["count"]) if rows else 0


def landed(influx: InfluxDB, total: int) -> int:
    """How far a run that writes ``total`` readings has got, as a poll can ask without slowing
    it: InfluxDB's own count of the points it has taken (``SHOW STATS``, under a millisecond)
    until that reaches ``total``, then :func:`count` of the readings themselves, which decides.
    A ``count("seq")`` over 100,000 points costs InfluxDB ~28 ms of CPU (measured): polled every
    10 ms near a run's end it took half of InfluxDB's CPU in a run, from the writes it timed."""
    series = influx.query("SHOW STATS FOR 'write'")["results"][0].get("series", [])
    taken = next((dict(zip(s["columns"], s["values"][0], strict=True)).get("pointReqLocal", 0)
                  for s in series if s.get("name") == "write"), 0)
    return count(influx) if taken >= total else int(taken)


def wait(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def proc_stats(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds used so far) of process PID, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def servers(work: Path, name: str) -> Iterator[tuple[Mosquitto, InfluxDB]]:
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
def process(args: list[str], log: Path, ready: Callable[[], bool]) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait(lambda: proc.poll() is None and ready(), 30, f"{args[2:4]} to be ready (log {log})")
        yield proc
    finally:
        stop_process(proc, timeout=_STOP_TIMEOUT_S)


@contextmanager
def profiled(proc: subprocess.Popen[bytes], out: Path) -> Iterator[None]:
    """py-spy attached to PROC until the block ends: a flame graph and GIL-holder stacks."""
    spy = str(Path(sys.executable).parent / "py-spy")
    runs = [subprocess.Popen([spy, "record", "--pid", str(proc.pid), "--rate", "250", "--threads",
                              *extra, "--output", str(out / name)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for extra, name in (([], "sen-profile.svg"), (["--gil", "--format", "raw"], "sen-profile-gil.txt"))]
    try:
        yield
    finally:
        for run in runs:  # SIGINT: py-spy writes its output and exits
            stop_process(run, sig=signal.SIGINT, timeout=_STOP_TIMEOUT_S)


@contextmanager
def nothing() -> Iterator[None]:
    yield


def gateway(broker: Mosquitto, influx: InfluxDB, work: Path, *extra: str) -> Child:
    """The Sen gateway, ready once it has subscribed; its spool in WORK/spool, EXTRA flags."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "gateway.log"
    mark = log.stat().st_size if log.exists() else 0
    workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1  # each subscribes
    ready = "subscribed to $share/sen/sen/v1/+/+/telemetry" if workers > 1 else "subscribed to sen/v1/+/+/telemetry"
    return process([sys.executable, "-m", "gateway", "gateway", "run", "--mqtt", broker.url, "--influx", influx.url,
                    "--database", DB, "--spool", str(work / "spool"), *extra], log,
                   lambda: log.exists() and log.read_text()[mark:].count(ready) >= workers)


def baseline(kind: str, broker: Mosquitto, influx: InfluxDB, work: Path, *extra: str) -> Child:
    """A baseline of :mod:`bench.baselines`, ready once it writes its count file."""
    work.mkdir(parents=True, exist_ok=True)
    counts = work / f"{kind}.count"
    counts.unlink(missing_ok=True)
    return process([sys.executable, "-m", "bench.baselines", kind, "--mqtt-port", str(broker.port),
                    "--influx", influx.url, "--database", DB, "--count-file", str(counts), *extra],
                   work / f"{kind}.log", counts.exists)
