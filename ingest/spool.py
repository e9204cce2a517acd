"""The spool: a SQLite file (WAL, synchronous=FULL) that holds lines until InfluxDB has them.

- :meth:`Spool.commit` appends lines in one transaction and returns only once they are on
  disk; lines may carry an idempotency key, and a key seen before is skipped (counted as a
  duplicate) in that same transaction, so a redelivered message is not counted twice.
- A :class:`~ingest.ranges.Run` (a message's readings: one stream, numbered lines) is ONE
  row, deduplicated by number ranges (:mod:`ingest.ranges`; a commit's claims gathered by
  :mod:`ingest.claims`, so a run that continues its stream costs no statement of its own).
  ``lines.n`` says how many lines a row holds.
- :meth:`Spool.oldest` hands out the oldest lines in order; :meth:`Spool.delete` drops them
  once InfluxDB answered 2xx (later, when another holds the lock: :mod:`ingest.doomed`);
  :meth:`Spool.set_aside` moves refused lines to the dead-letter table instead.
- :meth:`Spool.add_dead_letter` keeps a rejected message (reason, detail, raw bytes: whole up
  to 4 KiB, else a sample). The dead letters are bounded (rows, age; the oldest dropped first
  and counted): :mod:`ingest.deadletters`.
- Group commit: :meth:`Spool.commit_many` appends the lines of many messages in ONE
  transaction (one fsync), and returns one result per message.
- Bounded: ``max_lines`` (0: no bound). :attr:`Spool.full` says when the spool holds that
  many lines; the gateway then stops taking messages (it does not ack them, so the broker
  keeps them: backpressure, never a drop) until the writer has drained it. A real disk-full
  (SQLITE_FULL) raises :class:`SpoolError` like any failed commit: nothing is acked.

One connection serialised by a lock, shared by the input thread and the writer's threads, for
every write (:meth:`Spool.delete`'s commit does not sync: a lost delete only writes lines
again); :meth:`Spool.oldest` reads on a second one (a WAL snapshot of what is committed), so
the writer's read of a batch does not hold up a commit. A commit's rows go in with few
statements (:func:`ingest.claims.insert_rows`). The tables and the upgrade of an older spool:
:mod:`ingest.spool_schema`; the values handed in and out (:class:`Entry`, :class:`Batch`,
...): :mod:`ingest.spool_records`, importable from here; the dead-letter methods:
:mod:`ingest.spool_letters`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path

from ingest import deadletters as dl
from ingest.claims import Claims, Tops, insert_rows
from ingest.doomed import Doomed
from ingest.errors import SpoolError
from ingest.ranges import Run
from ingest.spool_letters import SpoolLetters, now_ms
from ingest.spool_records import Batch, CommitResult, DeadLetter, Entry, Refused
from ingest.spool_schema import SPOOL_FILE, count_lines, open_spool
from ingest.sqlite import immediate

__all__ = ["SPOOL_FILE", "Batch", "CommitResult", "DeadLetter", "Entry", "Refused", "Spool"]

_LOGGER = logging.getLogger(__name__)
_DOOMED_WAIT = 4  # batches listed (ingest.doomed) before a delete waits for the lock


class Spool(SpoolLetters):
    """The durable queue of line-protocol lines in ``directory/spool.sqlite3``."""

    def __init__(self, directory: Path, *, max_lines: int = 0,
                 dead_letter_rows: int = dl.MAX_ROWS, dead_letter_days: float = dl.MAX_AGE_DAYS) -> None:
        self.path = directory / SPOOL_FILE
        self.max_lines = max_lines
        self._lock = threading.Lock()
        self._delta = 0  # lines a transaction adds (or removes): see _transaction
        self._synced = True  # the write connection's commits sync (open_durable): see _transaction
        self._bound = dl.Bound(max_rows=dead_letter_rows, max_age_days=dead_letter_days)
        self._tops = Tops()  # each stream's highest range, so most runs are claimed without a query
        self._read_lock = threading.Lock()
        self._adds = 0  # commits that added lines (oldest() tells an empty spool from a new commit)
        self._doomed = Doomed()  # rows delete() left for later (the lock was taken)
        try:
            self._db = open_spool(self.path)
            self._depth = count_lines(self._db)
            self._bound.dropped = dl.dropped_so_far(self._db)
            # oldest() reads on its own connection, a snapshot of what is committed (WAL): the
            # writer's long read does not hold the lock that commits take.
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA cache_size = -256")  # KiB: it reads each row once
        except (OSError, sqlite3.Error) as err:
            raise SpoolError(f"cannot open spool {self.path}: {err}") from err
        _LOGGER.info("spool %s opened, %s lines pending", self.path, self._depth)

    @property
    def full(self) -> bool:
        """True when ``max_lines`` lines wait for InfluxDB (stop taking messages)."""
        return 0 < self.max_lines <= self.pending

    def close(self) -> None:
        self.settle()
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction under the lock; committed (on disk, unless not ``synced``:
        see :meth:`delete`) when the block ends. What the block put in ``self._delta`` is added
        to the depth with the COMMIT, under the same lock (so :meth:`oldest` never sees the rows
        without their count). Never below zero: deleting rows another process added (``sen
        deadletters replay``) would otherwise take it there, until :meth:`oldest` next finds the
        spool empty."""
        with self._lock, self._locked_transaction(synced) as db:
            yield db

    @contextmanager
    def _locked_transaction(self, synced: bool) -> Iterator[sqlite3.Connection]:
        self._delta = 0
        try:
            if synced is not self._synced:  # a setting of the connection, set between transactions
                self._db.execute("PRAGMA synchronous = FULL" if synced else "PRAGMA synchronous = NORMAL")
                self._synced = synced
            with immediate(self._db) as db:
                yield db
        except sqlite3.Error as err:
            raise SpoolError(f"spool {self.path}: {err}") from err
        self._depth = max(0, self._depth + self._delta)

    def commit(self, entries: Sequence[Entry | Run]) -> CommitResult:
        """Append ``entries`` durably, skipping those whose key was seen before."""
        return self.commit_many([entries])[0]

    def commit_many(self, groups: Sequence[Sequence[Entry | Run]]) -> list[CommitResult]:
        """Append every group's entries in one transaction; one result per group. The rows go
        in with few statements, and so do the ranges of runs that continue their stream
        (:mod:`ingest.claims`)."""
        now = now_ms()
        results: list[CommitResult] = []
        rows: list[tuple[str, int, int]] = []
        total = 0
        with self._transaction() as db:
            self._tops.check(db)
            claims = Claims(db, self._tops, now)
            for entries in groups:
                added = duplicates = 0
                for entry in entries:
                    if isinstance(entry, Run):
                        if len(entry.lines) != len(entry.seqs):
                            raise SpoolError(f"run of {entry.stream}: {len(entry.seqs)} seqs, {len(entry.lines)} lines")
                        fresh = claims.claim(entry.stream, entry.seqs)
                        lines = entry.lines if fresh is None else [
                            line for line, new in zip(entry.lines, fresh, strict=True) if new]
                        if lines:
                            rows.append(("\n".join(lines), now, len(lines)))
                        added += len(lines)
                        duplicates += len(entry.lines) - len(lines)
                        continue
                    if entry.key is not None:
                        cur = db.execute("INSERT OR IGNORE INTO seen (key, added_ms) VALUES (?, ?)",
                                         (entry.key, now))
                        if cur.rowcount == 0:
                            duplicates += 1
                            continue
                    rows.append((entry.line, now, 1))
                    added += 1
                results.append(CommitResult(added=added, duplicates=duplicates))
                total += added
            claims.flush()
            self._adds += total > 0
            insert_rows(db, "INSERT INTO lines (line, added_ms, n) VALUES ", rows)
            self._delta = total
        self._tops.update(claims.tops)  # committed: what it wrote is the table now
        return results

    def oldest(self, limit: int, *, skip: Sequence[tuple[int, int]] = ()) -> Batch | None:
        """The oldest pending rows, ``limit`` lines or just past it, or None when empty;
        ``skip``: first and last ids of batches still on their way (writes in flight together)."""
        rows: list[tuple[int, str, int, int]] = []
        count, adds = 0, self._adds
        skip = [*skip, *self._doomed.spans()]  # listed before the read begins (see ingest.doomed)
        where = "".join(" AND id NOT BETWEEN ? AND ?" for _ in skip)
        with self._read_lock:
            try:
                cursor = self._reader.execute(f"SELECT id, line, added_ms, n FROM lines WHERE 1{where} "
                                              "ORDER BY id LIMIT ?", (*(i for pair in skip for i in pair), limit))
                while count < limit:
                    chunk = cursor.fetchmany(max(1, min(1024, limit - count)))
                    if not chunk:
                        break
                    before_last = count + sum(map(_N, chunk)) - chunk[-1][3]
                    if before_last < limit:  # the whole chunk is taken
                        rows.extend(chunk)
                        count = before_last + chunk[-1][3]
                        continue
                    for row in chunk:
                        if count >= limit:
                            break
                        rows.append(row)
                        count += int(row[3])
                cursor.close()
            except sqlite3.Error as err:
                raise SpoolError(f"spool {self.path}: {err}") from err
        if not rows:
            with self._lock:
                if adds == self._adds and not skip:  # none committed since: lines another process added are written too
                    self._depth = 0
            return None
        return Batch(ids=tuple(map(_ID, rows)), texts=tuple(map(_LINE, rows)), oldest_ms=int(rows[0][2]),
                     sizes=tuple(map(_N, rows)))

    def delete(self, ids: Sequence[int], *, lines: int | None = None) -> None:
        """Drop rows InfluxDB has acknowledged; ``lines``: how many lines they held when handed
        out (a batch of :meth:`oldest`), so no count is asked, and rows another process deleted
        meanwhile (``sen deadletters replay``) leave the running count as well. The commit does
        not sync: a delete lost to a power cut only writes its lines to InfluxDB again (the same
        points: an overwrite), and the next commit's sync takes it to the disk. Consecutive rows
        with their ``lines`` (a batch: the usual) are deleted now when the lock is free, else
        listed for a later delete (:mod:`ingest.doomed`); :meth:`settle` deletes them now."""
        args: tuple[object, ...]
        consecutive = bool(ids) and ids[-1] - ids[0] == len(ids) - 1 and tuple(ids) == tuple(
            range(ids[0], ids[-1] + 1))
        if consecutive and lines is not None:
            self._doomed.add(ids[0], ids[-1], lines)
            self.settle(wait=len(self._doomed) >= _DOOMED_WAIT)
            return
        if consecutive:
            where, args = "id BETWEEN ? AND ?", (ids[0], ids[-1])
        else:
            where, args = "id IN (SELECT value FROM json_each(?))", (dl.id_list(ids),)
        with self._transaction(synced=False) as db:
            if lines is None:
                lines = int(db.execute(f"SELECT coalesce(sum(n), 0) FROM lines WHERE {where}", args).fetchone()[0])
            db.execute(f"DELETE FROM lines WHERE {where}", args)
            self._delta = -lines

    def settle(self, *, wait: bool = True) -> None:
        """Delete the rows :meth:`delete` left listed; not ``wait``: only if no one holds the lock."""
        if self._doomed and self._lock.acquire(blocking=wait):
            try:
                with self._locked_transaction(synced=False) as db:
                    taken = self._doomed.delete_in(db)
                    self._delta = -sum(r[2] for r in taken)
                self._doomed.done(taken)  # committed: a read that starts now does not see them
            finally:
                self._lock.release()

    def depth(self) -> int:
        """How many lines wait for InfluxDB (a query: right even when another process writes)."""
        self.settle()
        with self._lock:
            return count_lines(self._db)

    @property
    def pending(self) -> int:
        """This instance's running count of waiting lines (no query; used for ``full``). Not below
        zero: a settle() lowers the count a moment before it unlists its rows."""
        return max(0, self._depth - self._doomed.lines)

    def forget_keys_before(self, cutoff_ms: int) -> int:
        """Drop idempotency keys added before ``cutoff_ms`` so the table stays bounded."""
        with self._transaction() as db:
            dropped = sum(db.execute(sql, (cutoff_ms,)).rowcount for sql in (
                "DELETE FROM seen WHERE added_ms < ?", "DELETE FROM ranges WHERE added_ms < ?"))
            self._tops.forget()  # under the lock: no commit sees the ranges it remembered
        return dropped


_ID, _LINE, _N = itemgetter(0), itemgetter(1), itemgetter(3)
