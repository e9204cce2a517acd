"""The registry file's tables, what :func:`load_devices` reads back from them at start, and the
upgrade of a registry written before boots had a site and a flash id.

Version 2 keys every boot by (site, device, fid, boot) (DESIGN.md, Identity), keeps the last
reading time of each sensor, and stamps anchors and boots with when they were made or last
seen, so :meth:`~gateway.service.registry.Registry.prune` can drop the ones long gone (a board
that deep-sleeps makes a boot per wake). Version 3 adds each device's application version and
OTA state from its status (``ver``, ``ota``): two columns added to a version-2 file in place.
A version-1 file (anchors and boots keyed by (device, boot)) is upgraded in place, in one
transaction, when the gateway opens it: each row takes the site of its device from the devices
table (a name at two sites, which version 1 could not tell apart, gives each site the row) and
flash id 0, what a board that sends no ``fid`` is keyed by.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ingest.sqlite import immediate, open_durable, run_statements

from gateway.service.devices import BOOTS_KEPT, BootState, DeviceState, parse_gaps
from gateway.service.identity import BootTuple

_LOGGER = logging.getLogger(__name__)

VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    site TEXT NOT NULL, device TEXT NOT NULL, fid INTEGER NOT NULL, boot INTEGER NOT NULL,
    anchor_ms INTEGER NOT NULL, added_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, device, fid, boot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL, until_ms INTEGER,
    last_seen_ms INTEGER NOT NULL, last_reading_ms INTEGER, fid INTEGER, boot INTEGER,
    readings INTEGER NOT NULL, duplicates INTEGER NOT NULL, ver TEXT, ota TEXT,
    PRIMARY KEY (site, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boots (
    site TEXT NOT NULL, device TEXT NOT NULL, fid INTEGER NOT NULL, boot INTEGER NOT NULL,
    highest_seq INTEGER NOT NULL, acked_seq INTEGER NOT NULL DEFAULT 0, gaps TEXT NOT NULL,
    seen_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, device, fid, boot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sensors (
    site TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL, last_reading_ms INTEGER NOT NULL,
    PRIMARY KEY (site, device, sensor)
) WITHOUT ROWID;
"""

_UPGRADE_1 = """
ALTER TABLE anchors RENAME TO anchors_v1;
ALTER TABLE boots RENAME TO boots_v1;
ALTER TABLE devices RENAME TO devices_v1;
""" + SCHEMA + """
INSERT INTO devices SELECT site, device, state, until_ms, last_seen_ms, last_reading_ms, 0, boot,
    readings, duplicates, NULL, NULL FROM devices_v1;
INSERT OR IGNORE INTO anchors SELECT d.site, a.device, 0, a.boot, a.anchor_ms, d.last_seen_ms
    FROM anchors_v1 a JOIN devices_v1 d ON d.device = a.device;
INSERT OR IGNORE INTO boots SELECT d.site, b.device, 0, b.boot, b.highest_seq, b.acked_seq, b.gaps,
    d.last_seen_ms FROM boots_v1 b JOIN devices_v1 d ON d.device = b.device;
DROP TABLE anchors_v1;
DROP TABLE boots_v1;
DROP TABLE devices_v1;
"""


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def open_registry(path: Path) -> sqlite3.Connection:
    """Open the registry file at ``path``, creating or upgrading its tables. Raises OSError or
    sqlite3.Error (the registry wraps them)."""
    db = open_durable(path, "")
    try:
        if "anchors" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} \
                and "site" not in _columns(db, "anchors"):
            with immediate(db):
                run_statements(db, _UPGRADE_1)
                db.execute(f"PRAGMA user_version = {VERSION}")
            _LOGGER.info("registry %s upgraded: boots are keyed by site and flash id now", path)
        # One transaction: one sync; a worker opening the file at the same time waits (a deferred
        # transaction that read first could not write after the other's commit).
        with immediate(db):
            run_statements(db, SCHEMA)
            for column in ("ver", "ota"):  # version 2 -> 3
                if column not in _columns(db, "devices"):
                    db.execute(f"ALTER TABLE devices ADD COLUMN {column} TEXT")
            db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        db.close()
        raise
    return db


def load_devices(db: sqlite3.Connection) -> tuple[dict[tuple[str, str], DeviceState], dict[BootTuple, int]]:
    """The devices of the file, each with its newest boots (:data:`~gateway.service.devices.BOOTS_KEPT`),
    and every boot's acked seq."""
    boots: dict[tuple[str, str], list[tuple[int, int, int, int, str]]] = {}
    acked: dict[BootTuple, int] = {}
    for site, device, fid, boot, highest, acked_seq, gaps in db.execute(
            "SELECT site, device, fid, boot, highest_seq, acked_seq, gaps FROM boots"):
        boots.setdefault((site, device), []).append((boot, fid, highest, acked_seq, gaps))
        acked[(site, device, fid, boot)] = acked_seq
    sensors: dict[tuple[str, str], dict[str, int]] = {}
    for site, device, sensor, last in db.execute("SELECT site, device, sensor, last_reading_ms FROM sensors"):
        sensors.setdefault((site, device), {})[sensor] = last
    devices = {}
    for row in db.execute("SELECT site, device, state, until_ms, last_seen_ms, last_reading_ms, readings,"
                          " duplicates, fid, boot, ver, ota FROM devices"):
        key = (row[0], row[1])
        state = DeviceState(site=row[0], device=row[1], state=row[2], until_ms=row[3],
                            last_seen_ms=row[4], last_reading_ms=row[5], readings=row[6],
                            duplicates=row[7], sensors=sensors.get(key, {}), ver=row[10], ota=row[11])
        # The device's current flash last, so it stays the "latest" boot after a restart.
        current = row[8]
        for boot, fid, highest, acked_seq, gaps in sorted(boots.get(key, []),
                                                          key=lambda b: (b[1] == current, b[0]))[-BOOTS_KEPT:]:
            # What was acked was settled then: the floor survives a restart with it.
            state.boots[(fid, boot)] = BootState(boot=boot, fid=fid, highest=highest,
                                                 gaps=parse_gaps(gaps), floor=acked_seq)
        devices[key] = state
    return devices, acked
