"""Fault-test kit: the gateway as a real process, a QoS1 publisher, a fault-injecting HTTP
proxy in front of the real InfluxDB, and the exactly-once check."""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import InfluxDB, Mosquitto
from tests.integration.helpers import sen_process, wait_for

BASE_MS = 1_763_800_000_000


class GatewayProcess:
    """`python -m gateway gateway run ...` in its own process; kill() is kill -9 (of the supervisor
    alone with ``workers`` > 1: its workers see it gone and stop)."""

    def __init__(self, tmp: Path, name: str, mosquitto: Mosquitto, influx_url: str, db: str,
                 *extra: str, workers: int = 1) -> None:
        self.workers = workers
        self.spool = tmp / f"spool-{name}"
        self.log = tmp / f"{name}.log"
        self.args = ("gateway", "run", "--mqtt", mosquitto.url, "--influx", influx_url,
                     "--database", db, "--spool", str(self.spool), "--client-id", f"{name}-{db}",
                     "--batch-size", "50", "--flush-interval", "0.2", "--reconnect-max", "2",
                     "--stats-interval", "2", "--workers", str(workers), *extra,
                     # Worker sessions outlive a test (they must, to keep their share while the gateway
                     # is away): a group of the test's own keeps them out of every other test's.
                     *(("--shared-group", db) if workers > 1 and "--shared-group" not in extra else ()))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mark = self.log.stat().st_size if self.log.exists() else 0
        started_ms = time.time_ns() // 1_000_000
        self.proc = sen_process(*self.args, log=self.log)
        wait_for(lambda: self.log.read_text(errors="replace")[mark:].count(
            "subscribed to $share" if self.workers > 1 else "subscribed to") >= self.workers,
                 timeout=30, what=f"the gateway's subscriptions (log {self.log})")
        if self.workers > 1:  # forked first, the workers may subscribe before the supervisor's first status
            status = self.spool / "workers.json"
            wait_for(lambda: status.exists() and self.worker_status()["updated_ms"] >= started_ms,
                     timeout=30, what="this run's workers.json")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            assert self.proc.wait(timeout=60) == 0, self.log.read_text(errors="replace")[-3000:]
            self.proc = None

    def spools(self) -> list[Path]:
        """The gateway's spool files: its own and its workers' (spool_dir/workers/N)."""
        return [p for p in (self.spool / "spool.sqlite3", *sorted(self.spool.glob("workers/*/spool.sqlite3")))
                if p.exists()]

    def spooled_keys(self) -> int:
        """Readings this gateway ever committed (its spools' idempotency keys and ranges)."""
        total = 0
        for path in self.spools():
            db = sqlite3.connect(path)
            try:
                keys = db.execute("SELECT count(*) FROM seen WHERE key LIKE 'r/%'").fetchone()[0]
                ranged = db.execute("SELECT coalesce(sum(hi - lo + 1), 0) FROM ranges").fetchone()[0]
                total += int(keys) + int(ranged)
            finally:
                db.close()
        return total

    def depth_and_dead(self) -> tuple[int, int]:
        depth = dead = 0
        for path in self.spools():
            db = sqlite3.connect(path)
            try:
                depth += int(db.execute("SELECT count(*) FROM lines").fetchone()[0])
                dead += int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
            finally:
                db.close()
        return depth, dead

    def worker_status(self) -> dict[str, Any]:
        """The supervisor's workers.json (counters, each worker's pid and restarts)."""
        doc: dict[str, Any] = json.loads((self.spool / "workers.json").read_text())
        return doc


class Publisher:
    """Boards as paho QoS1 publishers: readings (device, boot 1, seq) with device timestamps."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def reading(self, device: str, seq: int) -> None:
        doc = {"v": 1, "dev": device, "boot": 1, "up": 1000 + seq,
               "r": [{"seq": seq, "ts": BASE_MS + seq * 1000, "m": {"temp_c": seq / 10}}]}
        self.infos.append(self.client.publish(f"sen/v1/lab/{device}/telemetry", json.dumps(doc), qos=1))

    def readings(self, devices: tuple[str, ...], seqs: range, *, pace_s: float = 0.0) -> None:
        """Publish; ``pace_s`` spaces the rounds out so a fault can land mid-stream."""
        paced = threading.Event()
        for seq in seqs:
            for device in devices:
                self.reading(device, seq)
            if pace_s:
                paced.wait(pace_s)

    def wait_sent(self, timeout: float = 60) -> None:
        wait_for(lambda: all(i.is_published() for i in self.infos), timeout=timeout,
                 what="the broker's PUBACK for every published reading")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(influxdb: InfluxDB, db: str) -> Counter[tuple[str, int, int]]:
    try:
        rows = influxdb.rows('SELECT "seq", "boot" FROM "telemetry" GROUP BY "device"', db)
    except Exception:  # noqa: BLE001 — InfluxDB may be restarting
        return Counter()
    # A query that runs while a batch is being written can see a point's fields one at a time
    # (InfluxDB stores them apart): a row with seq but not yet boot is counted on the next look.
    return Counter((r["device"], int(r["boot"]), int(r["seq"])) for r in rows
                   if r["boot"] is not None and r["seq"] is not None)


def assert_exactly_once(influxdb: InfluxDB, db: str, devices: tuple[str, ...], seqs: range,
                        timeout: float = 60) -> None:
    want = {(d, 1, s) for d in devices for s in seqs}
    wait_for(lambda: set(stored(influxdb, db)) >= want, timeout=timeout,
             what=f"{len(want)} readings in {db}")
    got = stored(influxdb, db)
    assert set(got) == want and all(n == 1 for n in got.values())


class FaultProxy:
    """HTTP proxy to a real InfluxDB (or any server with ``host`` and ``port``, such as
    VictoriaMetrics): ``fail_with`` answers every write (``/write`` or ``/api/v2/write``) with
    that status and ``Retry-After: retry_after``; ``max_lines`` answers 413 to writes of more
    lines; everything else is forwarded. ``writes`` records each write: (monotonic time, path,
    Content-Encoding, status answered)."""

    def __init__(self, target: InfluxDB | Any) -> None:
        self.target = target
        self.fail_with: int | None = None
        self.max_lines: int | None = None
        self.retry_after = "0"
        self.counts: Counter[int] = Counter()
        self.writes: list[tuple[float, str, str | None, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding")
                status = proxy.decide(self.path, encoding, body)
                if status is not None:
                    proxy.note_write(self.path, encoding, status)
                    self._answer(status, b'{"error":"injected fault"}',
                                 {"Retry-After": proxy.retry_after})
                    return
                conn = http.client.HTTPConnection(target.host, target.port, timeout=10)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    if proxy.is_write(self.path):
                        proxy.note_write(self.path, encoding, resp.status)
                    self._answer(resp.status, resp.read(), dict(resp.getheaders()))
                finally:
                    conn.close()

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                proxy.counts[status] += 1
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def is_write(path: str) -> bool:
        return path.startswith(("/write", "/api/v2/write"))

    def note_write(self, path: str, encoding: str | None, status: int) -> None:
        with self._lock:
            self.writes.append((time.monotonic(), path, encoding, status))

    def decide(self, path: str, encoding: str | None, body: bytes) -> int | None:
        if not self.is_write(path):
            return None
        if self.fail_with is not None:
            return self.fail_with
        if self.max_lines is not None:
            text = gzip.decompress(body) if encoding == "gzip" else body
            if text.count(b"\n") > self.max_lines:
                return 413
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
