"""Idempotency by ranges: which sequence numbers of a stream the spool has already taken.

A :class:`Run` is the lines of one stream (for the gateway: one boot of one device), each
with its sequence number. The ``ranges`` table keeps, per stream, disjoint inclusive ranges
of the numbers taken; a run that continues the stream extends the range below it, so a
device that sends in order costs one row per boot, not one key per reading, and checking a
run costs one indexed query whatever its length. A run that overlaps what was taken (a
redelivery, a re-sent outbox with new readings added) keeps only its new numbers.

Spools of an older version kept one ``seen`` key per reading (``STREAM/SEQ``, e.g.
``r/dev-1/3/42``): :func:`migrate_keys` turns those into ranges when the spool opens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS ranges (
    stream TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, added_ms INTEGER NOT NULL,
    PRIMARY KEY (stream, lo)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ranges_added ON ranges (added_ms);
"""

_NEIGHBOURS = ("SELECT * FROM (SELECT lo, hi FROM ranges WHERE stream = ?1 AND lo <= ?2"
               " ORDER BY lo DESC LIMIT 1)"
               " UNION ALL SELECT lo, hi FROM ranges WHERE stream = ?1 AND lo > ?2 AND lo <= ?3")


class Run(NamedTuple):  # one per message: a tuple is the cheapest to make
    """Lines of one stream, ``lines[i]`` numbered ``seqs[i]``; a number is spooled at most once."""

    stream: str
    seqs: tuple[int, ...]
    lines: tuple[str, ...]


def claim(db: sqlite3.Connection, stream: str, seqs: Sequence[int], now_ms: int) -> list[bool]:
    """Mark ``seqs`` of ``stream`` taken (inside the caller's transaction); True where new."""
    if not seqs:
        return []
    low, high = min(seqs), max(seqs)
    taken = db.execute(_NEIGHBOURS, (stream, low, high)).fetchall()
    below = taken[0] if taken and taken[0][0] <= low else None
    fresh: list[bool] = []
    new: set[int] = set()
    for seq in seqs:
        is_new = seq not in new and not any(lo <= seq <= hi for lo, hi in taken)
        if is_new:
            new.add(seq)
        fresh.append(is_new)
    for lo, hi in _runs(sorted(new)):
        if below is not None and below[1] == lo - 1:
            db.execute("UPDATE ranges SET hi = ?, added_ms = ? WHERE stream = ? AND lo = ?",
                       (hi, now_ms, stream, below[0]))
        else:
            db.execute("INSERT INTO ranges (stream, lo, hi, added_ms) VALUES (?, ?, ?, ?)",
                       (stream, lo, hi, now_ms))
        below = None  # only the first run can continue the range below
    return fresh


def _runs(ordered: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for seq in ordered:
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def migrate_keys(db: sqlite3.Connection, prefixes: tuple[str, ...] = ("r/",)) -> int:
    """Move per-reading ``seen`` keys (``STREAM/SEQ``) into ``ranges``; how many moved."""
    moved = 0
    for prefix in prefixes:
        rows = db.execute("SELECT key, added_ms FROM seen WHERE key >= ? AND key < ?",
                          (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))).fetchall()
        for key, added_ms in rows:
            stream, _, seq = str(key).rpartition("/")
            if stream and seq.isdigit():
                db.execute("INSERT OR IGNORE INTO ranges (stream, lo, hi, added_ms)"
                           " VALUES (?, ?, ?, ?)", (stream, int(seq), int(seq), added_ms))
                db.execute("DELETE FROM seen WHERE key = ?", (key,))
                moved += 1
    return moved
