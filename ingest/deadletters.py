"""The dead-letter table: what the gateway could not use, kept to look at and replay, bounded.

- A rejected message up to :data:`WHOLE_MAX_BYTES` (the contract's largest message, 4 KiB,
  DESIGN.md) is kept whole, so it can be replayed; of a larger one only the first
  :data:`SAMPLE_BYTES` are kept, and its size (``size``; NULL: kept whole) and the detail
  say so. Lines InfluxDB refused are kept whole (they come from messages within the bound).
- :class:`Bound`: at most :data:`MAX_ROWS` rows, none older than :data:`MAX_AGE_DAYS` days;
  the oldest go first, in the transaction that added the newest (and on the writer's
  periodic prune). Every dropped row is counted in ``spool_meta`` (``dead_letters_dropped``,
  durable; the gateway reports it) and logged: when dropping starts, then once a minute.
- :class:`DeadLetterFile`: an operator's handle on a spool's dead letters (``sen
  deadletters``): its own connection, each change one transaction, so it is safe while the
  gateway runs; :meth:`DeadLetterFile.requeue` moves refused lines back to ``lines``, where
  the gateway's writer finds them (it looks at the spool at least every flush interval).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.errors import OptionsError, SpoolError
from ingest.spool_records import DeadLetter
from ingest.spool_schema import SPOOL_FILE, open_spool
from ingest.sqlite import immediate

_LOGGER = logging.getLogger(__name__)

WHOLE_MAX_BYTES = 4096
SAMPLE_BYTES = 1024
DETAIL_MAX_CHARS = 1000
MAX_ROWS = 10_000
MAX_AGE_DAYS = 30.0
_DAY_MS = 86_400_000
_DROP_LOG_EVERY_S = 60.0
_DROPPED_KEY = "dead_letters_dropped"

INSERT = ("INSERT INTO dead_letters (added_ms, source, reason, detail, raw, size)"
          " VALUES (?, ?, ?, ?, ?, ?)")
SELECT = "SELECT id, added_ms, source, reason, detail, raw, size FROM dead_letters"
_IN = " id IN (SELECT value FROM json_each(?))"


def keep(raw: bytes, detail: str) -> tuple[bytes, int | None, str]:
    """What is kept of a rejected message: ``(raw or its sample, original size or None, detail)``."""
    detail = detail[:DETAIL_MAX_CHARS]
    if len(raw) <= WHOLE_MAX_BYTES:
        return raw, None, detail
    return (raw[:SAMPLE_BYTES], len(raw),
            f"{detail} (only the first {SAMPLE_BYTES} of {len(raw)} bytes kept)")


def letter(row: tuple[Any, ...]) -> DeadLetter:
    """A row of ``SELECT id, added_ms, source, reason, detail, raw, size`` as a :class:`DeadLetter`."""
    raw = bytes(row[5])
    return DeadLetter(id=int(row[0]), added_ms=int(row[1]), source=str(row[2]), reason=str(row[3]),
                      detail=str(row[4]), raw=raw, size=len(raw) if row[6] is None else int(row[6]))


def dropped_so_far(db: sqlite3.Connection) -> int:
    found = db.execute("SELECT value FROM spool_meta WHERE key = ?", (_DROPPED_KEY,)).fetchone()
    return int(found[0]) if found else 0


def id_list(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


class Bound:
    """At most ``max_rows`` dead letters, none older than ``max_age_days``; the oldest dropped first."""

    def __init__(self, *, max_rows: int = MAX_ROWS, max_age_days: float = MAX_AGE_DAYS) -> None:
        if max_rows < 1 or not max_age_days > 0:
            raise OptionsError(f"bad dead-letter bound: max_rows={max_rows}, max_age_days={max_age_days}")
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.dropped = 0  # in all, durable (spool_meta): what :meth:`trim` found there last
        self._logged_at: float | None = None
        self._unlogged = 0

    def trim(self, db: sqlite3.Connection, now_ms: int) -> int:
        """In the caller's transaction: drop rows over the bound, oldest first; how many."""
        dropped = db.execute("DELETE FROM dead_letters WHERE added_ms < ?",
                             (now_ms - int(self.max_age_days * _DAY_MS),)).rowcount
        over = int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]) - self.max_rows
        if over > 0:
            dropped += db.execute("DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                                  " ORDER BY id LIMIT ?)", (over,)).rowcount
        if dropped:
            db.execute("INSERT INTO spool_meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                       " DO UPDATE SET value = value + excluded.value", (_DROPPED_KEY, dropped))
        return dropped

    def note(self, dropped: int, total: int) -> None:
        """After the commit: ``dropped`` rows went, ``total`` in all; log when it starts, then once a minute."""
        self.dropped = total
        self._unlogged += dropped
        now = time.monotonic()
        if not self._unlogged or (self._logged_at is not None and now - self._logged_at < _DROP_LOG_EVERY_S):
            return
        _LOGGER.warning("dead letters over their bound (%s rows, %g days): dropped the %s oldest "
                        "(%s dropped in all)", self.max_rows, self.max_age_days, self._unlogged, total)
        self._logged_at, self._unlogged = now, 0


class DeadLetterFile:
    """The dead letters of the spool in ``directory``, for an operator's tool (gateway running or not)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / SPOOL_FILE
        if not self.path.is_file():
            raise SpoolError(f"no spool at {self.path}: is {directory} the gateway's spool dir?")
        try:
            self._db = open_spool(self.path)
        except (OSError, sqlite3.Error) as err:
            raise SpoolError(f"cannot open spool {self.path}: {err}") from err

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DeadLetterFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def select(self, *, ids: Sequence[int] | None = None, reason: str | None = None,
               before_ms: int | None = None, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters that match every filter given, oldest first."""
        where, args = self._where(ids=ids, reason=reason, before_ms=before_ms)
        sql = f"{SELECT}{where} ORDER BY id" + (" LIMIT ?" if limit is not None else "")
        try:
            return [letter(r) for r in self._db.execute(sql, [*args, *([limit] if limit is not None else [])])]
        except sqlite3.Error as err:
            raise SpoolError(f"spool {self.path}: {err}") from err

    def counts(self) -> tuple[int, int]:
        """(dead letters held, dropped by the bound in all)."""
        try:
            return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]), dropped_so_far(self._db)
        except sqlite3.Error as err:
            raise SpoolError(f"spool {self.path}: {err}") from err

    def requeue(self, ids: Sequence[int]) -> tuple[list[int], int]:
        """Move the whole lines InfluxDB refused (source ``influx``) among ``ids`` back to the
        spool's lines, in one transaction: (the ids moved, how many lines)."""
        now, listed = time.time_ns() // 1_000_000, id_list(ids)
        moved: list[int] = []
        count = 0
        with self._transaction() as db:
            for row_id, raw in db.execute(f"SELECT id, raw FROM dead_letters WHERE{_IN} AND source = 'influx'"
                                          " AND size IS NULL ORDER BY id", (listed,)).fetchall():
                lines = [line for line in bytes(raw).decode("utf-8").split("\n") if line.strip()]
                if lines:
                    db.execute("INSERT INTO lines (line, added_ms, n) VALUES (?, ?, ?)",
                               ("\n".join(lines), now, len(lines)))
                moved.append(int(row_id))
                count += len(lines)
            db.execute(f"DELETE FROM dead_letters WHERE{_IN}", (id_list(moved),))
        return moved, count

    def delete(self, ids: Sequence[int]) -> int:
        """Delete these dead letters (one transaction); how many there were."""
        with self._transaction() as db:
            return int(db.execute(f"DELETE FROM dead_letters WHERE{_IN}", (id_list(ids),)).rowcount)

    def _where(self, *, ids: Sequence[int] | None, reason: str | None,
               before_ms: int | None) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if ids is not None:
            clauses.append(_IN)
            args.append(id_list(ids))
        if reason is not None:
            clauses.append(" reason = ?")
            args.append(reason)
        if before_ms is not None:
            clauses.append(" added_ms < ?")
            args.append(before_ms)
        return (" WHERE" + " AND".join(clauses) if clauses else ""), args

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (it waits while the gateway holds the file's write lock)."""
        try:
            with immediate(self._db) as db:
                yield db
        except sqlite3.Error as err:
            raise SpoolError(f"spool {self.path}: {err}") from err
