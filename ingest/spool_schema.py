"""The spool's SQLite file: its tables, and the upgrade of a spool an older version wrote.

- ``lines``: one row per committed entry, or per :class:`~ingest.ranges.Run` (``n`` lines
  joined by newlines); ``seen``: idempotency keys; ``dead_letters``: rejected messages and
  lines InfluxDB refused (``size``: a sampled message's original size, NULL when kept whole;
  :mod:`ingest.deadletters`); ``spool_meta``: counters (dead letters dropped by the bound);
  ``ranges`` (:mod:`ingest.ranges`): sequence numbers taken per stream.
- An older spool (no ``lines.n``, one ``seen`` key per reading, no ``dead_letters.size``) is
  upgraded when it opens: the columns are added and the keys become ranges, so it drains and
  still deduplicates.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ingest.ranges import SCHEMA as RANGES_SCHEMA
from ingest.ranges import migrate_keys
from ingest.sqlite import immediate, open_durable

_LOGGER = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    n INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    added_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_added ON seen (added_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    added_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    size INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_added ON dead_letters (added_ms);
CREATE TABLE IF NOT EXISTS spool_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
""" + RANGES_SCHEMA


def open_spool(path: Path) -> sqlite3.Connection:
    """The spool database at PATH (created when missing), upgraded to this version's tables.

    Raises OSError or sqlite3.Error; the spool wraps them in :class:`~ingest.errors.SpoolError`.
    """
    db = open_durable(path, SCHEMA)
    try:
        moved = upgrade(db)
    except sqlite3.Error:
        db.close()
        raise
    if moved:
        _LOGGER.info("spool %s: %s per-reading keys moved to ranges", path, moved)
    return db


def upgrade(db: sqlite3.Connection) -> int:
    """Bring a spool of an older version up to date, in one transaction: add ``lines.n`` and
    ``dead_letters.size``, move per-reading keys to ranges. How many keys moved."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(lines)")}
    letters = {row[1] for row in db.execute("PRAGMA table_info(dead_letters)")}
    with immediate(db):
        if "n" not in columns:
            db.execute("ALTER TABLE lines ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
        if "size" not in letters:
            db.execute("ALTER TABLE dead_letters ADD COLUMN size INTEGER")
        return migrate_keys(db)


def count_lines(db: sqlite3.Connection) -> int:
    """How many lines wait in ``lines`` (a row of a run holds ``n``)."""
    return int(db.execute("SELECT coalesce(sum(n), 0) FROM lines").fetchone()[0])
