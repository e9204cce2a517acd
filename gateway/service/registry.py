"""The device registry, durable in ``spool_dir/registry.sqlite3`` (tables: registry_schema.py).

- Clock anchors: the first time the gateway sees a boot (site, device, fid, boot) it stores
  ``anchor = receive_time - up`` (or adopts the one another gateway published in the
  retained ``ack``), synchronously, so a redelivered reading always gets the same time.
- Devices: state (online / sleeping until / offline), last seen, last reading (per sensor
  too), boot, highest seq, gaps, duplicates — kept in memory (:mod:`gateway.service.devices`)
  and written to the file by :meth:`Registry.flush` (the service calls it every second and at
  stop). ``sen status`` reads the file while the gateway runs (WAL: readers do not block).
- Acks: :meth:`Registry.acks_for` gives the end-to-end ack of a boot, never lower than the
  one already retained on the broker for it.

A failed write (any exception, not only SQLite's) is rolled back, so the connection is never
left inside a transaction and the next write starts clean.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ingest.sqlite import immediate

from gateway.errors import RegistryError
from gateway.service.acks import Ack
from gateway.service.devices import DeviceState, gaps_text
from gateway.service.identity import BootKey, BootTuple
from gateway.service.registry_schema import load_devices, open_registry

_LOGGER = logging.getLogger(__name__)

REGISTRY_FILE = "registry.sqlite3"
ANCHORS_CACHED = 50_000  # anchors kept in memory; the table holds them all (until pruned)
KEEP_BOOTS_S = 30 * 86_400  # anchors and boots not seen for this long are pruned


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# What one committed message tells of its boot, as Registry.note_many takes it: (key, seqs,
# added, duplicates, last_reading_ms (None: nothing added), received_ms, lo, sensors (each
# sensor's newest reading time, or None)). Plain tuples, the key too (a BootKey is one): workers
# send them by the thousand.
Note = tuple[BootTuple, list[int], int, int, int | None, int, int | None, Mapping[str, int] | None]


class Registry:
    def __init__(self, directory: Path) -> None:
        self.path = directory / REGISTRY_FILE
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceState] = {}
        self._acked: dict[BootTuple, int] = {}  # boot -> highest seq retained
        self._anchors: dict[BootTuple, int] = {}  # a worker's keys come as plain tuples
        self._dirty: set[tuple[str, str]] = set()
        try:
            self._db = open_registry(self.path)
            self._load()
        except (OSError, sqlite3.Error, ValueError) as err:
            raise RegistryError(f"cannot open registry {self.path}: {err}") from err

    def _load(self) -> None:
        self._devices, self._acked = load_devices(self._db)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (the caller holds the lock); rolled back on any exception."""
        try:
            with immediate(self._db):
                yield
        except (sqlite3.Error, OverflowError, ValueError) as err:
            raise RegistryError(f"registry {self.path}: {err}") from err

    # -- anchors ---------------------------------------------------------------------------
    def anchor(self, key: BootKey, *, candidate_ms: int) -> int:
        """The stored anchor of boot ``key``, storing ``candidate_ms`` if there is none."""
        return self.anchors({key: candidate_ms})[key]

    def anchors(self, candidates: Mapping[BootKey, int]) -> dict[BootKey, int]:
        """:meth:`anchor` for many boots: the new ones stored in ONE transaction."""
        with self._lock:
            found = {key: self._anchors[key] for key in candidates if key in self._anchors}
            new = [key for key in candidates if key not in found]
            if not new:
                return found
            created = []
            try:
                with self._transaction():
                    for key in new:
                        made, found[key] = self._store_anchor(key, candidates[key])
                        if made:
                            created.append(key)
            except BaseException:
                for key in new:
                    self._anchors.pop(key, None)
                raise
        for key in created:
            _LOGGER.info("%s: clock anchor %s", key, found[key])
        return found

    def _store_anchor(self, key: BootKey, anchor_ms: int) -> tuple[bool, int]:
        cur = self._db.execute("INSERT OR IGNORE INTO anchors (site, device, fid, boot, anchor_ms, added_ms)"
                               " VALUES (?, ?, ?, ?, ?, ?)", (*key, anchor_ms, _now_ms()))
        row = self._db.execute("SELECT anchor_ms FROM anchors WHERE site = ? AND device = ? AND fid = ?"
                               " AND boot = ?", key).fetchone()
        self._cache_anchor(key, int(row[0]))
        return cur.rowcount == 1, int(row[0])

    def _cache_anchor(self, key: BootTuple, anchor_ms: int) -> None:
        # A cache of the table: bounded, since a deep-sleeping board makes a boot per wake.
        if len(self._anchors) >= ANCHORS_CACHED:
            self._anchors.clear()
        self._anchors[key] = anchor_ms

    def remember_anchors(self, anchors: Iterable[tuple[BootTuple, int | None]]) -> None:
        """Anchors a worker stored (None: it knew none), for the acks."""
        with self._lock:
            known = self._anchors
            for key, anchor_ms in anchors:
                if anchor_ms is not None and known.get(key) != anchor_ms:
                    self._cache_anchor(key, anchor_ms)

    def known_anchor(self, key: BootKey) -> int | None:
        with self._lock:
            if key not in self._anchors:
                row = self._db.execute("SELECT anchor_ms FROM anchors WHERE site = ? AND device = ?"
                                       " AND fid = ? AND boot = ?", key).fetchone()
                if row is None:
                    return None
                self._cache_anchor(key, int(row[0]))
            return self._anchors[key]

    # -- retained acks (from any gateway of the group) ---------------------------------------
    def adopt_ack(self, ack: Ack) -> None:
        """Take a retained ack read from the broker: its anchor (when we have none) and seq."""
        key = ack.key
        if ack.anchor and self.known_anchor(key) is None:
            with self._lock:
                with self._transaction():
                    created, _ = self._store_anchor(key, ack.anchor)
            if created:
                _LOGGER.info("%s: adopted clock anchor %s from the retained ack", key, ack.anchor)
        with self._lock:
            if ack.seq > self._acked.get(key, 0):
                self._acked[key] = ack.seq
                self._device(ack.site, ack.device).boot_state(ack.fid, ack.boot).raise_to(ack.seq)
                self._dirty.add((ack.site, ack.device))

    def acks_for(self, keys: Iterable[BootTuple]) -> list[Ack | None]:
        """Per boot of ``keys``, the ack to publish (None if nothing of it is spooled); recorded."""
        out: list[Ack | None] = []
        with self._lock:
            devices, acked, anchors = self._devices, self._acked, self._anchors
            for key in keys:
                site, device, fid, boot = key
                state = devices.get((site, device))
                boot_state = state.boots.get((fid, boot)) if state else None
                seq = max(boot_state.contiguous if boot_state else 0, acked.get(key, 0))
                if seq == 0:
                    out.append(None)
                    continue
                acked[key] = seq
                out.append(Ack(site, device, boot, seq, anchors.get(key, 0), fid))  # its fields' order
        return out

    # -- devices -----------------------------------------------------------------------------
    def _device(self, site: str, device: str) -> DeviceState:
        state = self._devices.get((site, device))
        if state is None:
            state = self._devices[(site, device)] = DeviceState(site=site, device=device)
        return state

    def note_many(self, notes: Iterable[Note]) -> None:
        """Fold in committed messages' readings (a :data:`Note` each, in the order committed)."""
        grew = []
        with self._lock:
            devices, dirty = self._devices, self._dirty
            for key, seqs, added, duplicates, last_reading_ms, received_ms, lo, sensors in notes:
                site, device, fid, boot = key
                where = (site, device)
                state = devices.get(where) or self._device(site, device)
                boot_state = state.boots.get((fid, boot)) or state.boot_state(fid, boot)
                if boot_state.gaps:  # only this boot's gaps change
                    before = boot_state.missing
                    boot_state.note(seqs)
                    if (more := boot_state.missing - before) > 0:
                        grew.append((key, more, max(seqs)))
                elif len(seqs) == 1 and seqs[0] == boot_state.highest + 1:  # the next one: the usual
                    boot_state.highest = seqs[0]
                else:
                    boot_state.note(seqs)
                    if boot_state.gaps:
                        grew.append((key, boot_state.missing, max(seqs)))
                if lo is not None:
                    boot_state.settle_below(lo)
                state.last_seen_ms = received_ms
                if added:
                    if state.state != "online":
                        state.state, state.until_ms = "online", None
                    if last_reading_ms is not None and (state.last_reading_ms or 0) < last_reading_ms:
                        state.last_reading_ms = last_reading_ms
                    state.readings += added
                if sensors:
                    for sensor, when in sensors.items():
                        state.note_sensor(sensor, when)
                if duplicates:
                    state.duplicates += duplicates
                dirty.add(where)
        for key, count, below in grew:
            _LOGGER.warning("%s: %s readings missing below seq %s (gap)", BootKey(*key), count, below)

    def note_status(self, *, site: str, device: str, state: str, until_ms: int | None,
                    received_ms: int, ver: str | None = None, ota: str | None = None) -> bool:
        """Record a status (``ver`` and ``ota`` when it carries them); True when the state changed."""
        with self._lock:
            dev = self._device(site, device)
            changed = dev.state != state
            dev.state, dev.until_ms = state, until_ms
            dev.ver = ver if ver is not None else dev.ver
            dev.ota = ota if ota is not None else dev.ota
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
            devices, boots, sensors = [], [], []
            for d in dirty:
                latest = d.latest
                devices.append((d.site, d.device, d.state, d.until_ms, d.last_seen_ms, d.last_reading_ms,
                                latest.fid if latest else None, latest.boot if latest else None,
                                d.readings, d.duplicates, d.ver, d.ota))
                boots += [(d.site, d.device, b.fid, b.boot, b.highest,
                           self._acked.get(BootKey(d.site, d.device, b.fid, b.boot), 0), gaps_text(b.gaps),
                           d.last_seen_ms) for b in d.boots.values()]
                sensors += [(d.site, d.device, sensor, last) for sensor, last in d.sensors.items()]
            try:
                with self._transaction():
                    self._db.executemany("INSERT OR REPLACE INTO devices (site, device, state, until_ms, last_seen_ms,"
                                         " last_reading_ms, fid, boot, readings, duplicates, ver, ota)"
                                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", devices)
                    self._db.executemany("INSERT OR REPLACE INTO boots VALUES (?, ?, ?, ?, ?, ?, ?, ?)", boots)
                    self._db.executemany("INSERT OR REPLACE INTO sensors VALUES (?, ?, ?, ?)", sensors)
            except BaseException:
                self._dirty.update((d.site, d.device) for d in dirty)
                raise

    def prune(self, *, older_than_ms: int | None = None) -> int:
        """Drop anchors and boots made or last seen before ``older_than_ms`` (default: 30 days
        ago) from the file and from memory; the devices stay. The boots a device keeps in
        memory are never pruned. Returns the rows dropped."""
        cutoff = _now_ms() - KEEP_BOOTS_S * 1000 if older_than_ms is None else older_than_ms
        with self._lock:
            live = {BootKey(d.site, d.device, b.fid, b.boot) for d in self._devices.values()
                    for b in d.boots.values()}
            with self._transaction():
                old = [BootKey(*row) for row in self._db.execute(
                    "SELECT site, device, fid, boot FROM anchors WHERE added_ms < ? UNION "
                    "SELECT site, device, fid, boot FROM boots WHERE seen_ms < ?", (cutoff, cutoff))]
                old = [key for key in old if key not in live]
                for key in old:
                    self._db.execute("DELETE FROM anchors WHERE site = ? AND device = ? AND fid = ? AND boot = ?", key)
                    self._db.execute("DELETE FROM boots WHERE site = ? AND device = ? AND fid = ? AND boot = ?", key)
            for key in old:
                self._anchors.pop(key, None)
                self._acked.pop(key, None)
        if old:
            _LOGGER.info("registry: %s boots not seen for %s days pruned", len(old), KEEP_BOOTS_S // 86_400)
        return len(old)
