"""`sen status`: the device table, read from the gateway's registry file (works while it runs).

    DEVICE              STATE     VERSION  LAST SEEN  LAST READING          BOOT  SEQ   GAPS
    lab/sim-0001        online    1.4.0    3 s ago    2025-11-22 08:13:20   7     20    2 missing (5-6)
      ota 1.5.0                   receiving 28% (40,960 of 141,603 B)
      sensor bme280                                   2025-11-22 08:13:20
      sensor sht31                                    2025-11-22 08:13:19

One line per device (VERSION: the application version its status reports), its OTA update
when it has had one and it is not done, then one line per sensor with its last reading
(readings that name no sensor, from older firmware, count for the device only). A gateway with receiving processes
(``--workers N``) also writes ``workers.json`` beside the registry every second: its merged
counters and each worker's, printed below the table (:func:`format_workers`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError
from gateway.service.devices import parse_gaps
from gateway.service.registry import REGISTRY_FILE
from gateway.service.sessions import STATUS_FILE


@dataclass(frozen=True, kw_only=True)
class DeviceRow:
    site: str
    device: str
    state: str
    until_ms: int | None
    last_seen_ms: int
    last_reading_ms: int | None
    boot: int | None
    highest_seq: int
    gaps: list[tuple[int, int]]
    sensors: dict[str, int] = field(default_factory=dict)  # sensor -> its last reading's time
    ver: str | None = None  # the application version of its status
    ota: dict[str, object] | None = None  # its status's OTA state (DESIGN.md, OTA)

    @property
    def missing(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.gaps)


def read_devices(spool_dir: Path) -> list[DeviceRow]:
    path = spool_dir / REGISTRY_FILE
    if not path.exists():
        raise GatewayError(f"no registry at {path}: has the gateway run with --spool {spool_dir}?")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            # a registry the gateway has not upgraded yet has no ver/ota columns
            cols = {str(r[1]) for r in db.execute("PRAGMA table_info(devices)")}
            extra = "d.ver, d.ota" if {"ver", "ota"} <= cols else "NULL, NULL"
            rows = db.execute(
                "SELECT d.site, d.device, d.state, d.until_ms, d.last_seen_ms, d.last_reading_ms,"
                f" d.boot, coalesce(b.highest_seq, 0), coalesce(b.gaps, ''), {extra} FROM devices d"
                " LEFT JOIN boots b ON b.site = d.site AND b.device = d.device AND b.fid = d.fid"
                " AND b.boot = d.boot ORDER BY d.site, d.device").fetchall()
            sensors: dict[tuple[str, str], dict[str, int]] = {}
            for site, device, sensor, last in db.execute(
                    "SELECT site, device, sensor, last_reading_ms FROM sensors ORDER BY sensor"):
                sensors.setdefault((site, device), {})[sensor] = last
        finally:
            db.close()
    except sqlite3.Error as err:
        raise GatewayError(f"cannot read registry {path}: {err}") from err
    return [DeviceRow(site=r[0], device=r[1], state=r[2], until_ms=r[3], last_seen_ms=r[4],
                      last_reading_ms=r[5], boot=r[6], highest_seq=r[7], gaps=parse_gaps(r[8]),
                      sensors=sensors.get((r[0], r[1]), {}), ver=r[9], ota=_ota(r[10]))
            for r in rows]


def _ota(text: str | None) -> dict[str, object] | None:
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


_OTA_WORDS = {"recv": "receiving", "ready": "verified, switching slots", "trial": "on trial",
              "done": "done", "refused": "refused", "rolled_back": "rolled back"}


def ota_text(ota: dict[str, object] | None) -> str:
    """An OTA state in words: ``receiving 28% (40,960 of 141,603 B)``, ``refused (bad_signature)``."""
    if not ota:
        return ""
    st = str(ota.get("st"))
    text = _OTA_WORDS.get(st, st)
    at, of = ota.get("at"), ota.get("of")
    if st == "recv" and isinstance(at, int) and isinstance(of, int) and of > 0:
        text += f" {100 * at // of}% ({at:,} of {of:,} B)"
    if ota.get("why"):
        text += f" ({ota['why']})"
    return text


def _ago(ms: int, now_ms: int) -> str:
    seconds = max(0, (now_ms - ms) // 1000)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _state(row: DeviceRow, now_ms: int) -> str:
    if row.state == "sleeping" and row.until_ms:
        return f"sleeping ({'due' if row.until_ms <= now_ms else 'wakes in ' + _ago(now_ms, row.until_ms)[:-4]})"
    return row.state


def _gaps(row: DeviceRow) -> str:
    if not row.gaps:
        return "none"
    shown = ",".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in row.gaps[:5])
    return f"{row.missing} missing ({shown}{',...' if len(row.gaps) > 5 else ''})"


def format_table(rows: list[DeviceRow], *, now_ms: int | None = None) -> str:
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    header = ("DEVICE", "STATE", "VERSION", "LAST SEEN", "LAST READING", "BOOT", "SEQ", "GAPS")
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        table.append((f"{r.site}/{r.device}", _state(r, now_ms), r.ver or "-", _ago(r.last_seen_ms, now_ms),
                      _when(r.last_reading_ms), str(r.boot) if r.boot is not None else "-",
                      str(r.highest_seq), _gaps(r)))
        if r.ota and r.ota.get("st") != "done":
            table.append((f"  ota {r.ota.get('ver', '?')}", "", ota_text(r.ota), "", "", "", "", ""))
        table.extend((f"  sensor {name}", "", "", "", _when(last), "", "", "") for name, last in r.sensors.items())
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in table)


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


_SHOWN = ("received", "readings", "duplicates", "rejected", "written", "spool_depth", "acks_published")


def read_workers(spool_dir: Path) -> dict[str, object] | None:
    """The supervisor's ``workers.json``, or None when the gateway runs (or ran) as one process."""
    try:
        doc = json.loads((spool_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise GatewayError(f"cannot read {spool_dir / STATUS_FILE}: {err}") from err
    return doc if isinstance(doc, dict) else None


def format_workers(doc: dict[str, object], *, now_ms: int | None = None) -> str:
    """The merged counters, then one line per worker."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    total = doc.get("total") if isinstance(doc.get("total"), dict) else {}
    workers = doc.get("workers") if isinstance(doc.get("workers"), list) else []
    assert isinstance(total, dict) and isinstance(workers, list)
    updated = doc.get("updated_ms")
    when = _ago(updated, now_ms) if isinstance(updated, int) else "?"
    lines = [f"GATEWAY {doc.get('gateway', '?')}: {total.get('workers', len(workers))} workers, "
             f"{total.get('worker_restarts', 0)} restarts (updated {when})",
             "  total     " + _counts(total)]
    for w in workers:
        if isinstance(w, dict):
            state = f"pid {w.get('pid')}" if w.get("running") else "not running"
            lines.append(f"  worker {w.get('index')}  {state}, {w.get('restarts', 0)} restarts: {_counts(w)}")
    return "\n".join(lines)


def _counts(values: dict[object, object]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {values.get(key, 0)}" for key in _SHOWN)
