"""Claiming the sequence numbers of many runs in one group commit, with few statements.

:func:`ingest.ranges.claim` costs a query and a write per run. Most runs just continue their
stream: every number above the stream's highest range. :class:`Tops` remembers each stream's
highest range as the spool last wrote it, so such a run needs no query; :class:`Claims` gathers
the range writes of a whole commit and runs them as a few upserts at its end. Anything
else (a redelivery, numbers out of order or with holes) goes the careful way, through
:func:`~ingest.ranges.claim`, after the gathered writes.

The remembered ranges are a cache of the ``ranges`` table, trusted only while no other
connection has written the file (``PRAGMA data_version``: another process replaying dead
letters, another spool of the same file) and dropped when a commit fails or keys are forgotten.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain

from ingest.ranges import claim

TOPS_KEPT = 50_000  # streams remembered at most (a stream is a boot of a device)
_NONE = (-2, -2)  # a stream with no range yet: no number continues it
_ROWS_PER_STATEMENT = 64


class Tops:
    """Each stream's highest range ``(lo, hi)`` in the table, as far as this connection knows."""

    def __init__(self) -> None:
        self.ranges: dict[str, tuple[int, int]] = {}
        self._version: int | None = None

    def check(self, db: sqlite3.Connection) -> None:
        """At the start of a transaction: forget all if another connection wrote the file."""
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self.ranges.clear()
            self._version = version

    def forget(self) -> None:
        self.ranges.clear()

    def update(self, tops: dict[str, tuple[int, int]]) -> None:
        """What a committed transaction wrote (never called for one that failed)."""
        if len(self.ranges) + len(tops) > TOPS_KEPT:
            self.ranges.clear()
        self.ranges.update(tops)


class Claims:
    """The claims of one transaction: :meth:`claim` per run, :meth:`flush` before it commits,
    then ``tops.update(claims.tops)`` once it committed."""

    def __init__(self, db: sqlite3.Connection, tops: Tops, now_ms: int) -> None:
        self._db = db
        self._known = tops.ranges
        self._now = now_ms
        self.tops: dict[str, tuple[int, int]] = {}  # streams this transaction moved
        self._inserts: dict[tuple[str, int], int] = {}  # (stream, lo) -> hi, new rows
        self._updates: dict[tuple[str, int], int] = {}  # (stream, lo) -> hi, rows that grow

    def _top(self, stream: str) -> tuple[int, int]:
        top = self.tops.get(stream) or self._known.get(stream)
        if top is None:
            row = self._db.execute("SELECT lo, hi FROM ranges WHERE stream = ? ORDER BY lo DESC LIMIT 1",
                                   (stream,)).fetchone()
            top = (int(row[0]), int(row[1])) if row else _NONE
            self.tops[stream] = top
        return top

    def claim(self, stream: str, seqs: Sequence[int]) -> list[bool] | None:
        """Take ``seqs`` of ``stream``; None when all are new, else True where new."""
        if not seqs:
            return []
        first, last = seqs[0], seqs[-1]
        lo, hi = self._top(stream)
        if first > hi and last - first == len(seqs) - 1 and (
                len(seqs) < 3 or tuple(seqs) == tuple(range(first, last + 1))):  # consecutive
            if first == hi + 1:  # continues the highest range
                key = (stream, lo)
                (self._inserts if key in self._inserts else self._updates)[key] = last
                self.tops[stream] = (lo, last)
                return None
            else:  # above it, with a hole between: a new highest range
                self._inserts[(stream, first)] = last
                self.tops[stream] = (first, last)
                return None
        self.flush()
        fresh = claim(self._db, stream, seqs, self._now)
        self.tops.pop(stream, None)
        self._known.pop(stream, None)  # the table says; asked again next time
        return fresh

    def flush(self) -> None:
        """Write the gathered range changes (inside the transaction), new and grown rows alike."""
        rows = [(s, lo, hi, self._now) for (s, lo), hi in (*self._inserts.items(), *self._updates.items())]
        self._inserts.clear()
        self._updates.clear()
        insert_rows(self._db, "INSERT INTO ranges (stream, lo, hi, added_ms) VALUES ", rows,
                    " ON CONFLICT (stream, lo) DO UPDATE SET hi = excluded.hi, added_ms = excluded.added_ms")


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], tail: str = "") -> None:
    """``head (?, ...), (?, ...), ... tail`` for ``rows``, in order, in few statements: SQLite gives
    up the GIL at every step, and a busy gateway's other threads make each a wait (``executemany``
    is a step per row). Statements of 64 rows, the rest in halves (32, 16, ..., 1), so only seven
    sizes of statement are ever prepared and cached."""
    start = 0
    while start < len(rows):
        size = min(_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start:start + size]
        values = "(" + ", ".join(["?"] * len(chunk[0])) + ")"
        db.execute(head + ",".join([values] * size) + tail, list(chain.from_iterable(chunk)))
        start += size
