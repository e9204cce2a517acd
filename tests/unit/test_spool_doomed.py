"""A written batch's delete when the spool's lock is taken (the intake committing): its rows are
left to a later delete that finds the lock free, skipped and uncounted until then (ingest.doomed)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from ingest.spool import Batch, Entry, Spool
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


def test_a_delete_that_finds_the_lock_taken_leaves_its_rows_to_the_next_that_finds_it_free(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(6))
    _delete_while_locked(spool, 3)
    assert _rows(tmp_path) == 6  # not deleted yet
    assert spool.pending == 3  # but not waiting either
    rest = spool.oldest(2)
    assert rest is not None and rest.lines == ("m x=3.0 3", "m x=4.0 4")  # nor handed out again
    spool.commit(_lines(1, start=6))  # the intake's commits leave them (see ingest.doomed)
    assert _rows(tmp_path) == 7 and spool.pending == 4
    spool.delete(rest.ids, lines=2)  # the lock is free: both batches go, in one transaction
    assert _rows(tmp_path) == 2 and spool.pending == 2 and spool.depth() == 2
    assert spool._doomed.spans() == []
    spool.close()


def test_settle_and_close_delete_what_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(4))
    _delete_while_locked(spool, 2)
    spool.settle()  # the writer when it finds nothing to write
    assert _rows(tmp_path) == 2 and spool.pending == 2
    _delete_while_locked(spool, 1)
    spool.close()
    assert _rows(tmp_path) == 1


def test_the_fourth_batch_listed_waits_for_the_lock(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(8))
    batches: list[Batch] = []
    for _ in range(4):
        batch = spool.oldest(2, skip=[(b.ids[0], b.ids[-1]) for b in batches])
        assert batch is not None
        batches.append(batch)
    fourth = threading.Event()

    def delete_fourth() -> None:
        spool.delete(batches[3].ids, lines=2)
        fourth.set()

    with spool._lock:
        for batch in batches[:3]:
            spool.delete(batch.ids, lines=2)  # each returns at once
        waiting = threading.Thread(target=delete_fourth)
        waiting.start()
        assert not fourth.wait(0.2)  # blocked on the lock this thread holds
        assert _rows(tmp_path) == 8
    waiting.join(10)
    assert fourth.is_set() and _rows(tmp_path) == 0 and spool.pending == 0
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
    spool.settle()
    assert seen == [[(ids[0], ids[-1])]] and doomed.spans() == []
    spool.close()


def test_pending_is_never_below_zero_while_a_settle_moves_its_count(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(2))
    _delete_while_locked(spool, 2)
    spool._depth = 0  # as settle() leaves it for a moment: its rows counted off, not yet unlisted
    assert spool.pending == 0
    spool.close()
