"""A written batch's delete when the spool's lock is taken (the intake committing): its rows are
left to the next write transaction, skipped and uncounted until then (ingest.doomed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ingest.errors import SpoolError
from ingest.ranges import Run
from ingest.spool import Entry, Spool
from ingest.spool_schema import SPOOL_FILE


def _lines(n: int, start: int = 0) -> list[Entry]:
    return [Entry(line=f"m x={i}.0 {i}", key=f"k{i}") for i in range(start, start + n)]


def _rows(path: Path) -> int:
    """The rows in the file, as another process sees them."""
    db = sqlite3.connect(path / SPOOL_FILE)
    try:
        return int(db.execute("SELECT count(*) FROM lines").fetchone()[0])
    finally:
        db.close()


def _delete_while_locked(spool: Spool, count: int) -> tuple[int, ...]:
    batch = spool.oldest(count)
    assert batch is not None
    with spool._lock:  # the intake commits: the delete does not wait for it
        spool.delete(batch.ids, lines=len(batch))
    return batch.ids


def test_a_delete_that_finds_the_lock_taken_is_done_by_the_next_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(5))
    _delete_while_locked(spool, 3)
    assert _rows(tmp_path) == 5  # not deleted yet
    assert spool.pending == 2  # but not waiting either
    rest = spool.oldest(10)
    assert rest is not None and rest.lines == ("m x=3.0 3", "m x=4.0 4")  # nor handed out again
    spool.commit(_lines(1, start=5))  # the next write transaction deletes them
    assert _rows(tmp_path) == 3 and spool.pending == 3 and spool.depth() == 3
    assert spool._doomed.spans() == []
    spool.close()


def test_a_free_lock_deletes_at_once_and_settle_or_close_delete_what_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(6))
    batch = spool.oldest(2)
    assert batch is not None
    spool.delete(batch.ids, lines=2)
    assert _rows(tmp_path) == 4  # the lock was free
    _delete_while_locked(spool, 2)
    spool.settle()  # the writer when it finds nothing to write
    assert _rows(tmp_path) == 2 and spool.pending == 2
    _delete_while_locked(spool, 1)
    spool.close()
    assert _rows(tmp_path) == 1


def test_a_transaction_that_fails_leaves_the_rows_listed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(4))
    ids = _delete_while_locked(spool, 2)
    with pytest.raises(SpoolError):  # a run whose lines and seqs disagree: the commit rolls back
        spool.commit([Run(stream="s", seqs=(1, 2), lines=("m x=9.0 9",))])
    assert _rows(tmp_path) == 4 and spool._doomed.spans() == [(ids[0], ids[-1])] and spool.pending == 2
    left = spool.oldest(10)
    assert left is not None and left.lines == ("m x=2.0 2", "m x=3.0 3")
    spool.settle()
    assert _rows(tmp_path) == 2
    spool.close()


def test_a_range_is_unlisted_only_once_its_delete_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that began before the deleting commit still sees the rows: the list must still have them."""
    spool = Spool(tmp_path)
    spool.commit(_lines(3))
    ids = _delete_while_locked(spool, 2)
    seen: list[list[tuple[int, int]]] = []
    doomed = spool._doomed
    real = doomed.delete_in

    def delete_in(db: sqlite3.Connection) -> list[tuple[int, int, int]]:
        taken = real(db)
        seen.append(doomed.spans())  # deleted in the transaction, not committed yet
        return taken

    monkeypatch.setattr(doomed, "delete_in", delete_in)
    spool.commit(_lines(1, start=3))
    assert seen == [[(ids[0], ids[-1])]] and doomed.spans() == []
    spool.close()
