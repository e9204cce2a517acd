"""Readings as one spool row per message: dedup by (stream, seq) ranges, upgrade, narrowing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.ranges import Run
from ingest.spool import Entry, Spool
from ingest.writer import Writer
from ingest.retry import Backoff

from tests.unit.test_writer import FakeSink


def _run(seqs: list[int], stream: str = "r/dev-1/1") -> Run:
    return Run(stream=stream, seqs=tuple(seqs), lines=tuple(f"m x={s}.0 {s}" for s in seqs))


def _ranges(spool: Spool) -> list[tuple[str, int, int]]:
    db = sqlite3.connect(spool.path)
    try:
        return [tuple(r) for r in db.execute("SELECT stream, lo, hi FROM ranges ORDER BY stream, lo")]
    finally:
        db.close()


def test_a_run_is_one_row_and_in_order_runs_keep_one_range(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.commit([_run([1, 2, 3])]).added == 3
    assert spool.commit([_run([4, 5])]).added == 2
    assert _ranges(spool) == [("r/dev-1/1", 1, 5)]
    batch = spool.oldest(100)
    assert batch is not None and len(batch.ids) == 2 and len(batch) == 5 and batch.sizes == (3, 2)
    assert batch.lines == tuple(f"m x={s}.0 {s}" for s in range(1, 6))
    assert spool.depth() == 5 and spool.pending == 5
    spool.delete(batch.ids)
    assert spool.depth() == 0 and spool.pending == 0
    spool.close()


def test_overlaps_keep_only_new_seqs_even_after_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit([_run([1, 2, 3]), _run([7, 8])])
    spool.close()
    spool = Spool(tmp_path)
    result = spool.commit([_run([2, 3, 4, 5, 6, 7, 8, 9, 9])])
    assert (result.added, result.duplicates) == (4, 5)  # 4, 5, 6, 9 new; 2, 3, 7, 8, the 2nd 9 not
    assert spool.commit([_run([1, 2, 3], stream="r/dev-1/2")]).added == 3  # another boot
    assert spool.commit([_run(list(range(1, 10)))]).added == 0
    batch = spool.oldest(100)
    assert batch is not None and len(batch) == 5 + 4 + 3
    assert spool.forget_keys_before(10**15) >= 2
    assert spool.commit([_run([1])]).added == 1
    spool.close()


def test_an_older_spool_is_upgraded_and_its_keys_still_dedup(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "spool.sqlite3")
    db.executescript("""
        CREATE TABLE lines (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL,
                            added_ms INTEGER NOT NULL);
        CREATE TABLE seen (key TEXT PRIMARY KEY, added_ms INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX seen_added ON seen (added_ms);
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, added_ms INTEGER NOT NULL,
            source TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, raw BLOB NOT NULL);
        INSERT INTO lines (line, added_ms) VALUES ('m x=1.0 1', 5), ('m x=2.0 2', 5);
        INSERT INTO seen VALUES ('r/dev-1/1/1', 5), ('r/dev-1/1/2', 5), ('d/dev-1/1/9', 5);
    """)
    db.commit()
    db.close()
    spool = Spool(tmp_path)
    assert spool.depth() == 2
    assert spool.commit([_run([1, 2, 3])]).added == 1
    assert spool.commit([Entry(line="d", key="d/dev-1/1/9")]).added == 0
    batch = spool.oldest(10)
    assert batch is not None and batch.lines == ("m x=1.0 1", "m x=2.0 2", "m x=3.0 3")
    spool.close()


def test_a_refused_line_in_a_row_is_set_aside_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit([Run(stream="r/d/1", seqs=(1, 2, 3), lines=("m x=1.0 1", "m bad=1.0 2", "m x=3.0 3"))])
    spool.commit([_run([4, 5])])
    sink = FakeSink()
    writer = Writer(spool, sink, batch_size=100, flush_interval_s=0.0,
                    backoff=Backoff(initial_s=0.01, max_s=0.05))
    writer.start()
    assert writer.wait_idle(5.0)
    writer.stop()
    assert sorted(sink.lines) == ["m x=1.0 1", "m x=3.0 3", "m x=4.0 4", "m x=5.0 5"]
    assert [d.raw for d in spool.dead_letters()] == [b"m bad=1.0 2"]
    assert spool.depth() == 0 and writer.stats.written == 4 and writer.stats.set_aside == 1
    spool.close()
