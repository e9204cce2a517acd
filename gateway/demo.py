"""`sen demo`: private broker and InfluxDB, the gateway and virtual boards, and a live table.

Every child runs in its own session and is stopped here, in order (boards, then the
gateway so it flushes its spool, then the servers), on Ctrl-C, SIGTERM or the end of
`--duration`, so no process outlives the demo.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hardware.procs import STOP_SIGNALS, die_with_parent

from gateway.devstack import DevStackError, InfluxDB, Mosquitto

_LOGGER = logging.getLogger(__name__)

DATABASE = "sen_demo"
_REFRESH_S = 1.0
_STOP_TIMEOUT_S = 10.0


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int) -> None:
        """Signal the child's whole process group, wait, then kill what is left."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, sig)
            try:
                self.process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("%s did not stop in %.0f s; killing it", self.name, _STOP_TIMEOUT_S)
        # Whatever is left of the group (a board whose parent died) goes too.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _spawn(name: str, args: list[str], log_path: Path) -> _Child:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent(),  # even if the demo is killed outright, its children go too
        )
    _LOGGER.info("%s started (pid %d), log %s", name, process.pid, log_path)
    return _Child(name=name, process=process, log_path=log_path)


def _table(influx: InfluxDB) -> list[dict[str, Any]]:
    """One row per device and sensor: its newest point and how many points InfluxDB holds."""
    try:
        latest = influx.rows('SELECT last("seq") AS seq, "temp_c", "rh_pct" FROM "telemetry" '
                             'GROUP BY "device", "sensor"', DATABASE)
        counts = {(r["device"], r.get("sensor", "")): r["count"] for r in
                  influx.rows('SELECT count("seq") FROM "telemetry" GROUP BY "device", "sensor"', DATABASE)}
    except DevStackError as exc:
        _LOGGER.debug("table query failed: %s", exc)
        return []
    for row in latest:
        row["points"] = counts.get((row["device"], row.get("sensor", "")), 0)
    return sorted(latest, key=lambda r: (str(r["device"]), str(r.get("sensor", ""))))


def _render(rows: list[dict[str, Any]], out: IO[str], elapsed_s: float, tty: bool, header: str) -> None:
    now_ms = time.time() * 1000
    lines = [*header.splitlines(), f"Sen demo — {elapsed_s:5.0f} s — Ctrl-C to stop",
             f"{'device':<12} {'sensor':<8} {'seq':>6} {'temp_c':>8} {'rh_pct':>8} {'age':>7} {'points':>8}"]
    for r in rows:
        age = f"{(now_ms - r['time']) / 1000:.1f}s"
        temp = "-" if r.get("temp_c") is None else f"{r['temp_c']:.2f}"
        rh = "-" if r.get("rh_pct") is None else f"{r['rh_pct']:.1f}"
        sensor = r.get("sensor") or "-"
        lines.append(f"{r['device']:<12} {sensor:<8} {r['seq']:>6} {temp:>8} {rh:>8} {age:>7} {r['points']:>8}")
    if not rows:
        lines.append("(waiting for the first readings to reach InfluxDB)")
    if tty:
        out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
    else:
        out.write("\n".join(lines) + "\n\n")
    out.flush()


def _say(text: str) -> None:
    """A line on stderr; nothing when the terminal is gone (closed: writes fail with EIO)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def query_hint(port: int, database: str) -> list[str]:
    """The `influx` shell line the demo suggests (Debian's influxdb-client, installed by set-up)."""
    return ["influx", "-port", str(port), "-database", database,
            "-execute", "SELECT * FROM telemetry WHERE time > now() - 1m"]


def run(*, base_dir: Path, boards: int = 3, interval_ms: int = 1000, duration_s: float | None = None) -> int:
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(base_dir / "mosquitto", die_with_parent=True)
    influx = InfluxDB(base_dir / "influxdb", die_with_parent=True)
    children: list[_Child] = []
    stop_requested = False

    def _on_term(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # Ctrl-C is KeyboardInterrupt; SIGTERM and SIGHUP (the terminal closed) stop it the same way.
    previous = {sig: signal.signal(sig, _on_term) for sig in STOP_SIGNALS if sig != signal.SIGINT}
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        broker.start()
        influx.start()
        children.append(_spawn("gateway", [
            "gateway", "run", "--mqtt", broker.url, "--influx", influx.url, "--database", DATABASE,
            "--spool", str(base_dir / "gateway"),
        ], base_dir / "gateway.log"))
        children.append(_spawn("boards", [
            # One reading per envelope, so the table moves with every reading.
            "sim", "--mqtt", broker.url, "--boards", str(boards), "--interval-ms", str(interval_ms), "--batch-max", "1",
            "--state-dir", str(base_dir / "boards"),
        ], base_dir / "sim.log"))
        header = (f"broker {broker.url}, InfluxDB {influx.url} (database {DATABASE}), logs in {base_dir}\n"
                  f"query it meanwhile: {shlex.join(query_hint(influx.port, DATABASE))}")
        _say(header)
        tty = sys.stdout.isatty()
        while not stop_requested:
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            for child in children:
                if child.process.poll() is not None:
                    raise DevStackError(f"{child.name} exited with code {child.process.returncode}; "
                                        f"see {child.log_path}")
            rows = _table(influx)
            try:
                _render(rows, sys.stdout, elapsed, tty, header if tty else "")
            except OSError:  # the terminal is gone (closed): stop as on SIGHUP
                break
            time.sleep(min(_REFRESH_S, max(0.05, (duration_s or 1e9) - elapsed)))
    except KeyboardInterrupt:
        pass
    finally:
        _say("stopping: boards, gateway (flushing its spool), InfluxDB, Mosquitto")
        for child in children:
            child.stop(signal.SIGINT if child.name == "boards" else signal.SIGTERM)
        rows = _table(influx) if influx.running else rows
        influx.stop()
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    total = sum(int(r["points"]) for r in rows)
    boards = len({r["device"] for r in rows})
    _say(f"demo stopped: {total} points from {boards} board(s) in InfluxDB database {DATABASE!r} "
         f"(data kept in {base_dir})\n"
         "run the demo again to add to them; README.md (Looking at the data) has InfluxQL examples")
    return 0
