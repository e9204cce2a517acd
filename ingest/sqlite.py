"""Opening Sen's SQLite files alike: WAL journal, full sync, usable from several threads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_durable(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating its folder and SCHEMA when missing) a database whose commits reach the disk.

    SCHEMA runs as one transaction: one sync to the disk, not one per statement (a new spool took
    7 ms here, 3.5 ms so, and more on a Pi's SD card). IMMEDIATE: a second process making the same
    file waits, then finds the tables made (a deferred transaction that read the schema before the
    other's commit could not write after it).
    Raises OSError or sqlite3.Error; the caller wraps them in its own package's error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _to_wal(db)
        db.execute("PRAGMA synchronous=FULL")
        if schema:
            with immediate(db):
                run_statements(db, schema)
    except sqlite3.Error:
        db.close()
        raise
    return db


def _to_wal(db: sqlite3.Connection, *, wait_s: float = 5.0) -> None:
    """WAL journal. A new file's switch to it needs the file to itself, and SQLite does not wait
    for that (a lock taken over a read lock never waits: it could deadlock): another process
    opening the same new file at that moment made it answer "database is locked" at once (seen with
    four openers). Asked again for up to ``wait_s``, as long as sqlite3 waits for any other lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


def run_statements(db: sqlite3.Connection, script: str) -> None:
    """SCRIPT's statements one by one, in the caller's transaction (``executescript`` would commit
    it first). Sen's scripts have no triggers and no ``;`` in a literal."""
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


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
