"""The gateway's benchmarks, each contender on its own fresh servers (:mod:`bench.harness`).

- :func:`throughput`: readings per second end to end (first publish to last reading counted
  in InfluxDB) for the Sen gateway and the baselines (``ceiling``, ``naive``).
- :func:`latency`: publish-to-queryable latency of probe readings (p50, p99) under a steady
  background load, with the gateway's memory and CPU.
- :func:`replay`: how fast a spool filled during an outage drains into InfluxDB.
- :func:`backlog`: how fast a backlog the broker queued while the consumer was away drains
  (the gateway into InfluxDB, or the bare subscriber), one or ten readings per message; with
  ``--workers N`` among the flags, the gateway's N receiving processes each drain their share.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import DB, baseline, gateway, landed, nothing, proc_stats, process, profiled, servers, wait
from bench.loadgen import Load, Publisher, envelopes

# How often a run's progress is looked at: a look costs ~0.75 ms (InfluxDB's SHOW STATS, or the
# baseline's count file), ~4% of a core at this pace. Looks every 0.25 s until 90% done (then
# every 10 ms) could miss the 90% of a drain of 1-2 s (the backlog rows): five 10/msg drains
# ended 0.06-0.17 s after their last reading was written, 0.05-0.10 s at this pace (start-up
# of the interpreter and the final count included).
_POLL_S = 0.02


def throughput(kind: str, readings: int, work: Path, *, profile_dir: Path | None = None) -> dict[str, Any]:
    """Readings per second from the first publish to the last reading confirmed.

    ``profile_dir``: py-spy the Sen gateway during the run and write its profiles there.
    """
    load = Load(readings=readings)
    messages = envelopes(load, base_ms=int(time.time() * 1000) - 86_400_000)
    with servers(work, kind) as (broker, influx):
        consumer = (gateway(broker, influx, work / kind) if kind == "sen"
                    else baseline(kind, broker, influx, work / kind))
        with consumer as proc, (profiled(proc, profile_dir) if profile_dir and kind == "sen" else nothing()):
            publisher = Publisher(broker.host, broker.port, f"load-{kind}")
            peak_rss = 0
            try:
                started = publisher.publish_all(messages)
                counter: Callable[[], int]
                if kind == "ceiling":
                    def counter() -> int:
                        return int((work / kind / "ceiling.count").read_text() or 0)
                else:
                    def counter() -> int:
                        return landed(influx, readings)
                deadline = started + 600
                done = 0
                while done < readings and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                    done = counter()
                    peak_rss = max(peak_rss, proc_stats(proc.pid)[0])
                seconds = time.monotonic() - started
            finally:
                publisher.close()
    return {"kind": kind, "readings": readings, "confirmed": done, "seconds": round(seconds, 2),
            "readings_per_s": round(done / seconds), "peak_rss_mib": round(peak_rss / 2**20, 1),
            "devices": load.devices, "per_envelope": load.per_envelope}


def latency(rate: int, seconds: float, work: Path) -> dict[str, Any]:
    """Publish-to-queryable latency of probe readings under a steady background load."""
    load = Load(readings=int(rate * seconds))
    messages = envelopes(load, base_ms=int(time.time() * 1000) - 86_400_000)
    with servers(work, f"latency-{rate}") as (broker, influx):
        with gateway(broker, influx, work / f"latency-{rate}") as proc:
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
            rss0, cpu0 = proc_stats(proc.pid)
            wall0 = time.monotonic()
            peak_rss = rss0
            sampler_stop = threading.Event()

            def sample() -> None:
                nonlocal peak_rss
                while not sampler_stop.wait(0.5):
                    peak_rss = max(peak_rss, proc_stats(proc.pid)[0])

            sampler = threading.Thread(target=sample)
            sampler.start()
            background.publish_all(messages, rate_per_s=rate, readings_per_message=load.per_envelope)
            stop.set()
            _, cpu1 = proc_stats(proc.pid)
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
    with servers(work, "replay") as (broker, influx):
        started = time.monotonic()
        log = work / "replay" / "gateway.log"
        with process([sys.executable, "-m", "gateway", "gateway", "run", "--mqtt", broker.url, "--influx",
                      influx.url, "--database", DB, "--spool", str(spool_dir)], log, lambda: True):
            wait(lambda: landed(influx, readings) >= readings, 1800, "the spool to drain")
        seconds = time.monotonic() - started
    return {"readings": readings, "seconds": round(seconds, 2), "readings_per_s": round(readings / seconds)}


def backlog(kind: str, messages: int, per_envelope: int, work: Path, *extra: str) -> dict[str, Any]:
    """Messages per second a consumer drains from a backlog of MESSAGES queued QoS1 messages
    (1,000 devices, PER_ENVELOPE readings each): its session made first, the backlog
    published while it is away, then timed from its start to the last reading counted
    (in InfluxDB for Sen; by the process itself for the bare subscriber)."""
    load = Load(readings=messages * per_envelope, per_envelope=per_envelope)
    payloads = envelopes(load, base_ms=int(time.time() * 1000) - 86_400_000)
    name = base = "-".join(("backlog", kind, str(per_envelope), *(flag.strip("-") for flag in extra)))
    while (work / name).exists():  # a row run again (the --workers pairs): fresh servers, session and spool
        name = f"{base}-{int(name[len(base) + 1:] or 1) + 1}"
    with servers(work, name) as (broker, influx):
        def consumer(run: str) -> Any:
            where = work / name / run
            return (gateway(broker, influx, where, *extra) if kind == "sen"
                    else baseline(kind, broker, influx, where, "--persistent"))

        with consumer("session"):
            pass  # the broker now keeps this consumer's session and queues for it
        publisher = Publisher(broker.host, broker.port, f"load-{name}")
        try:
            publisher.publish_all(payloads)
            if not publisher.wait_acked(len(payloads), 600):
                raise TimeoutError("the broker did not take the whole backlog")
        finally:
            publisher.close()
        started = time.monotonic()
        with consumer("drain") as proc:
            done = peak_rss = peak_one = 0
            while done < load.readings and time.monotonic() < started + 900:
                time.sleep(_POLL_S)
                done = (landed(influx, load.readings) if kind == "sen"
                        else int((work / name / "drain" / f"{kind}.count").read_text() or 0))
                each = _tree_rss(proc.pid)
                peak_rss, peak_one = max(peak_rss, sum(each)), max(peak_one, max(each, default=0))
            seconds = time.monotonic() - started
    return {"kind": kind, "messages": len(payloads), "per_envelope": per_envelope, "readings": load.readings,
            "confirmed": done, "seconds": round(seconds, 2), "messages_per_s": round(len(payloads) * done
                                                                                    / load.readings / seconds),
            "readings_per_s": round(done / seconds), "peak_rss_mib": round(peak_rss / 2**20, 1),
            "peak_process_rss_mib": round(peak_one / 2**20, 1), "flags": list(extra)}


def _tree_rss(pid: int) -> list[int]:
    """Resident bytes of PID and of each of its descendants (the gateway's workers, ``--workers N``,
    are children of its fork server)."""
    try:
        own = proc_stats(pid)[0]
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # a worker that just exited
        return []
    return [own, *(rss for kid in children for rss in _tree_rss(int(kid)))]
