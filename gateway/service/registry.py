"""The device registry, durable in ``spool_dir/registry.sqlite3``.

- Clock anchors: the first time the gateway sees (device, boot) it stores
  ``anchor = receive_time - up`` (or adopts the one another gateway published in the
  retained ``ack``), synchronously, so a redelivered reading always gets the same time.
- Devices: state (online / sleeping until / offline), last seen, last reading, boot, highest
  seq, gaps, duplicates — kept in memory (:mod:`gateway.service.devices`) and written to the file by
  :meth:`Registry.flush` (the service calls it every second and at stop). ``sen status``
  reads the file while the gateway runs (WAL: readers do not block the writer).
- Acks: :meth:`Registry.ack_for` gives the end-to-end ack of a boot, never lower than the
  one already retained on the broker for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from ingest.sqlite import open_durable

from gateway.service.acks import Ack
from gateway.service.devices import BootState, DeviceState
from gateway.errors import RegistryError

_LOGGER = logging.getLogger(__name__)

REGISTRY_FILE = "registry.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    device TEXT NOT NULL, boot INTEGER NOT NULL, anchor_ms INTEGER NOT NULL,
    PRIMARY KEY (device, boot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL, until_ms INTEGER,
    last_seen_ms INTEGER NOT NULL, last_reading_ms INTEGER, boot INTEGER,
    readings INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    PRIMARY KEY (site, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boots (
    device TEXT NOT NULL, boot INTEGER NOT NULL, highest_seq INTEGER NOT NULL,
    acked_seq INTEGER NOT NULL DEFAULT 0, gaps TEXT NOT NULL,
    PRIMARY KEY (device, boot)
) WITHOUT ROWID;
"""


def _gaps_text(gaps: list[tuple[int, int]]) -> str:
    return ",".join(f"{lo}-{hi}" for lo, hi in gaps)


def parse_gaps(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, text.split(",")):
        lo, hi = part.split("-")
        out.append((int(lo), int(hi)))
    return out


class Registry:
    def __init__(self, directory: Path) -> None:
        self.path = directory / REGISTRY_FILE
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceState] = {}
        self._acked: dict[tuple[str, int], int] = {}  # (device, boot) -> highest seq retained
        self._anchors: dict[tuple[str, int], int] = {}
        self._dirty: set[tuple[str, str]] = set()
        try:
            self._db = open_durable(self.path, _SCHEMA)
            self._load()
        except (OSError, sqlite3.Error, ValueError) as err:
            raise RegistryError(f"cannot open registry {self.path}: {err}") from err

    def _load(self) -> None:
        boots: dict[str, list[tuple[int, int, int, str]]] = {}
        for device, boot, highest, acked, gaps in self._db.execute(
                "SELECT device, boot, highest_seq, acked_seq, gaps FROM boots"):
            boots.setdefault(device, []).append((boot, highest, acked, gaps))
            self._acked[(device, boot)] = acked
        for row in self._db.execute(
                "SELECT site, device, state, until_ms, last_seen_ms, last_reading_ms, readings,"
                " duplicates FROM devices"):
            state = DeviceState(site=row[0], device=row[1], state=row[2], until_ms=row[3],
                                last_seen_ms=row[4], last_reading_ms=row[5], readings=row[6],
                                duplicates=row[7])
            for boot, highest, acked, gaps in sorted(boots.get(row[1], []))[-3:]:
                # What was acked was settled then: the floor survives a restart with it.
                state.boots[boot] = BootState(boot=boot, highest=highest, gaps=parse_gaps(gaps),
                                              floor=acked)
            self._devices[(row[0], row[1])] = state

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    # -- anchors ---------------------------------------------------------------------------
    def anchor(self, device: str, boot: int, *, candidate_ms: int) -> int:
        """The stored anchor of (device, boot), storing ``candidate_ms`` if there is none."""
        with self._lock:
            known = self._anchors.get((device, boot))
            if known is not None:
                return known
            created, anchor = self._store_anchor(device, boot, candidate_ms)
        if created:
            _LOGGER.info("device %s boot %s: clock anchor %s", device, boot, anchor)
        return anchor

    def anchors(self, candidates: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """:meth:`anchor` for many (device, boot): the new ones stored in ONE transaction."""
        with self._lock:
            found = {key: self._anchors[key] for key in candidates if key in self._anchors}
            new = [key for key in candidates if key not in found]
            if not new:
                return found
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for key in new:
                    found[key] = self._store_anchor(*key, candidates[key])[1]
                self._db.execute("COMMIT")
            except (sqlite3.Error, RegistryError) as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                for key in new:
                    self._anchors.pop(key, None)
                raise RegistryError(f"registry {self.path}: {err}") from err
        return found

    def _store_anchor(self, device: str, boot: int, anchor_ms: int) -> tuple[bool, int]:
        try:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO anchors (device, boot, anchor_ms) VALUES (?, ?, ?)",
                (device, boot, anchor_ms))
            row = self._db.execute("SELECT anchor_ms FROM anchors WHERE device = ? AND boot = ?",
                                   (device, boot)).fetchone()
        except sqlite3.Error as err:
            raise RegistryError(f"registry {self.path}: {err}") from err
        self._anchors[(device, boot)] = int(row[0])
        return cur.rowcount == 1, int(row[0])

    def known_anchor(self, device: str, boot: int) -> int | None:
        with self._lock:
            if (device, boot) not in self._anchors:
                row = self._db.execute("SELECT anchor_ms FROM anchors WHERE device = ? AND boot = ?",
                                       (device, boot)).fetchone()
                if row is None:
                    return None
                self._anchors[(device, boot)] = int(row[0])
            return self._anchors[(device, boot)]

    # -- retained acks (from any gateway of the group) ---------------------------------------
    def adopt_ack(self, ack: Ack) -> None:
        """Take a retained ack read from the broker: its anchor (when we have none) and seq."""
        with self._lock:
            key = (ack.device, ack.boot)
            if ack.anchor and key not in self._anchors:
                created, _ = self._store_anchor(ack.device, ack.boot, ack.anchor)
                if created:
                    _LOGGER.info("device %s boot %s: adopted clock anchor %s from the retained ack",
                                 ack.device, ack.boot, ack.anchor)
            if ack.seq > self._acked.get(key, 0):
                self._acked[key] = ack.seq
                self._device(ack.site, ack.device).boot_state(ack.boot).raise_to(ack.seq)
                self._dirty.add((ack.site, ack.device))

    def ack_for(self, site: str, device: str, boot: int) -> Ack | None:
        """The ack to publish for ``boot`` (None if nothing of it is spooled); records it."""
        with self._lock:
            state = self._devices.get((site, device))
            boot_state = state.boots.get(boot) if state else None
            key = (device, boot)
            seq = max(boot_state.contiguous if boot_state else 0, self._acked.get(key, 0))
            if seq == 0:
                return None
            self._acked[key] = seq
            return Ack(site=site, device=device, boot=boot, seq=seq,
                       anchor=self._anchors.get(key, 0))

    # -- devices -----------------------------------------------------------------------------
    def _device(self, site: str, device: str) -> DeviceState:
        state = self._devices.get((site, device))
        if state is None:
            state = self._devices[(site, device)] = DeviceState(site=site, device=device)
        return state

    def note_readings(self, *, site: str, device: str, boot: int, seqs: list[int], added: int,
                      duplicates: int, last_reading_ms: int | None, received_ms: int,
                      lo: int | None = None) -> None:
        with self._lock:
            state = self._device(site, device)
            before = state.missing
            boot_state = state.boot_state(boot)
            boot_state.note(seqs)
            if lo is not None:
                boot_state.settle_below(lo)
            state.last_seen_ms = received_ms
            if state.state != "online" and added:
                state.state, state.until_ms = "online", None
            if last_reading_ms is not None and added:
                state.last_reading_ms = max(state.last_reading_ms or 0, last_reading_ms)
            state.readings += added
            state.duplicates += duplicates
            self._dirty.add((site, device))
            grew = state.missing - before
        if grew > 0:
            _LOGGER.warning("device %s boot %s: %s readings missing below seq %s (gap)",
                            device, boot, grew, max(seqs))

    def note_status(self, *, site: str, device: str, state: str, until_ms: int | None,
                    received_ms: int) -> bool:
        """Record a status; True when the state changed."""
        with self._lock:
            dev = self._device(site, device)
            changed = dev.state != state
            dev.state, dev.until_ms = state, until_ms
            dev.last_seen_ms = max(dev.last_seen_ms, received_ms)
            self._dirty.add((site, device))
        return changed

    def snapshot(self) -> list[DeviceState]:
        with self._lock:
            return sorted(self._devices.values(), key=lambda d: (d.site, d.device))

    def flush(self) -> None:
        """Write what changed since the last flush, in one transaction."""
        with self._lock:
            dirty = [self._devices[k] for k in self._dirty if k in self._devices]
            self._dirty.clear()
            if not dirty:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for d in dirty:
                    self._db.execute(
                        "INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (d.site, d.device, d.state, d.until_ms, d.last_seen_ms,
                         d.last_reading_ms, d.boot, d.readings, d.duplicates))
                    for b in d.boots.values():
                        self._db.execute(
                            "INSERT OR REPLACE INTO boots VALUES (?, ?, ?, ?, ?)",
                            (d.device, b.boot, b.highest, self._acked.get((d.device, b.boot), 0),
                             _gaps_text(b.gaps)))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._dirty.update((d.site, d.device) for d in dirty)
                raise RegistryError(f"registry {self.path}: {err}") from err
