"""Rows InfluxDB has acknowledged that the spool has not deleted yet (:meth:`ingest.spool.Spool.delete`).

A writer thread that deleted its batch at once waited for the spool's lock, which the intake holds
for each commit, back to back in a flood (the lock is not fair): 25-40 ms a write in a traced
ten-reading drain, while its lane sent InfluxDB nothing. So a delete that finds the lock taken
leaves its rows here and goes on; the writer deletes them, all in one transaction, at a later
delete that finds the lock free, or waits for it once four batches are listed, or when it has
nothing to write (:meth:`Spool.settle`). Not in the intake's commits: at one reading a message
a batch is thousands of rows, and deleting them there put that work on the intake, the
bottleneck (two-worker one-reading drains were slower in 3 of 4 interleaved pairs). Until
then :meth:`Spool.oldest` skips them and the spool's running count leaves them out; a power cut
before that only writes them to InfluxDB again (the same points: an overwrite), as a delete's
unsynced commit always could.

A range leaves this list only once the transaction that deleted it has committed: a read of the
spool that began before that commit still sees the rows, and must still find them listed.
"""

from __future__ import annotations

import sqlite3
import threading

Range = tuple[int, int, int]  # first id, last id, lines


class Doomed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: list[Range] = []
        self.lines = 0  # lines in the listed rows

    def __len__(self) -> int:
        return len(self._ranges)

    def add(self, first: int, last: int, lines: int) -> None:
        with self._lock:
            self._ranges.append((first, last, lines))
            self.lines += lines

    def spans(self) -> list[tuple[int, int]]:
        """First and last ids of each listed range (for a read to skip)."""
        with self._lock:
            return [(first, last) for first, last, _ in self._ranges]

    def delete_in(self, db: sqlite3.Connection) -> list[Range]:
        """Delete the listed rows in DB's open transaction; the ranges deleted, for :meth:`done`
        once it committed."""
        with self._lock:
            taken = list(self._ranges)
        if taken:
            db.executemany("DELETE FROM lines WHERE id BETWEEN ? AND ?", [(first, last) for first, last, _ in taken])
        return taken

    def done(self, taken: list[Range]) -> None:
        """TAKEN's transaction committed: unlist them."""
        with self._lock:
            gone = set(taken)
            self._ranges = [r for r in self._ranges if r not in gone]
            self.lines -= sum(r[2] for r in taken)
