"""Opening Sen's SQLite files alike: WAL journal, full sync, usable from several threads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_durable(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating its folder and SCHEMA when missing) a database whose commits reach the disk.

    SCHEMA runs as one transaction: one sync to the disk, not one per statement (a new spool's
    nine statements took 7 ms here, and more on a Pi's SD card).
    Raises OSError or sqlite3.Error; the caller wraps them in its own package's error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if schema:
            db.executescript(f"BEGIN;\n{schema}\nCOMMIT;")
    except sqlite3.Error:
        db.close()
        raise
    return db


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: it waits for another writer of the file), committed
    when the block ends and rolled back if anything raises in it, so the connection is never left
    inside a transaction. SQLite's errors pass through; the caller wraps them in its own kind."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
