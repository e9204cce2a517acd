"""The spool's dead letters (:class:`ingest.spool.Spool` has these methods): refused lines moved
out of ``lines``, rejected messages kept, the table bounded (:mod:`ingest.deadletters`)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager

from ingest import deadletters as dl
from ingest.spool_records import DeadLetter, Refused


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SpoolLetters:
    _lock: threading.Lock
    _db: sqlite3.Connection
    _bound: dl.Bound
    _delta: int

    def _transaction(self, synced: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the spool's

    def set_aside(self, ids: Sequence[int], *, reason: str, detail: str) -> None:
        """Move rows InfluxDB refused to the dead-letter table, in one transaction."""
        now, listed = now_ms(), dl.id_list(ids)
        with self._transaction() as db:
            lines = db.execute("SELECT coalesce(sum(n), 0) FROM lines WHERE id IN"
                               " (SELECT value FROM json_each(?))", (listed,)).fetchone()[0]
            db.execute("INSERT INTO dead_letters (added_ms, source, reason, detail, raw)"
                       " SELECT ?, 'influx', ?, ?, CAST(line AS BLOB) FROM lines WHERE id IN"
                       " (SELECT value FROM json_each(?)) ORDER BY id",
                       (now, reason, detail[:dl.DETAIL_MAX_CHARS], listed))
            db.execute("DELETE FROM lines WHERE id IN (SELECT value FROM json_each(?))", (listed,))
            dropped = self._trim(db, now)
            self._delta = -int(lines)
        self._dropped(dropped)

    def set_aside_lines(self, row: int, refused: Sequence[Refused]) -> None:
        """Row ``row`` is done: the ``refused`` lines become dead letters, the rest were written."""
        now = now_ms()
        with self._transaction() as db:
            db.executemany(dl.INSERT, [(now, "influx", r.reason, r.detail[:dl.DETAIL_MAX_CHARS],
                                        r.line.encode(), None) for r in refused])
            found = db.execute("SELECT n FROM lines WHERE id = ?", (row,)).fetchone()
            db.execute("DELETE FROM lines WHERE id = ?", (row,))
            dropped = self._trim(db, now)
            self._delta = -int(found[0]) if found else 0
        self._dropped(dropped)

    def add_dead_letter(self, *, source: str, reason: str, detail: str, raw: bytes) -> None:
        """Keep a rejected message for inspection (whole up to 4 KiB, else a sample: :mod:`ingest.deadletters`)."""
        now = now_ms()
        kept, size, detail = dl.keep(raw, detail)
        with self._transaction() as db:
            db.execute(dl.INSERT, (now, source, reason, detail, kept, size))
            dropped = self._trim(db, now)
        self._dropped(dropped)

    def dead_letters(self, *, limit: int = 1000) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(f"{dl.SELECT} ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [dl.letter(r) for r in rows]

    def trim_dead_letters(self) -> int:
        """Drop dead letters over the bound (age, then count), as every insert does; how many."""
        with self._transaction() as db:
            dropped = self._trim(db, now_ms())
        self._dropped(dropped)
        return dropped[0]

    @property
    def dead_letters_dropped(self) -> int:
        """Dead letters dropped by the bound, in all (durable across restarts)."""
        return self._bound.dropped

    def _trim(self, db: sqlite3.Connection, at_ms: int) -> tuple[int, int]:
        dropped = self._bound.trim(db, at_ms)
        return dropped, dl.dropped_so_far(db) if dropped else self._bound.dropped

    def _dropped(self, counts: tuple[int, int]) -> None:
        if counts[0]:
            self._bound.note(*counts)
