"""The SQLite spool: durable commits, ordered batches, delete after ack, dead letters."""

from __future__ import annotations

from pathlib import Path

from ingest.spool import Entry, Spool


def _lines(n: int, start: int = 0) -> list[Entry]:
    return [Entry(line=f"m x={i}.0 {i}", key=f"k{i}") for i in range(start, start + n)]


def test_batches_come_out_in_order_and_leave_only_when_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.oldest(10) is None
    assert spool.commit(_lines(5)).added == 5
    first = spool.oldest(3)
    assert first is not None and first.lines == ("m x=0.0 0", "m x=1.0 1", "m x=2.0 2")
    assert spool.oldest(3) == first  # handed out again until deleted
    spool.delete(first.ids)
    rest = spool.oldest(10)
    assert rest is not None and rest.lines == ("m x=3.0 3", "m x=4.0 4")
    assert first.payload() == b"m x=0.0 0\nm x=1.0 1\nm x=2.0 2\n"
    spool.close()


def test_pending_lines_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.commit(_lines(4))
    batch = spool.oldest(2)
    assert batch is not None
    spool.delete(batch.ids)
    spool.close()  # a crash after commit: the lines are on disk already
    again = Spool(tmp_path)
    assert again.depth() == 2
    left = again.oldest(10)
    assert left is not None and left.lines == ("m x=2.0 2", "m x=3.0 3")
    again.close()


def test_lines_another_process_added_never_take_the_running_count_below_zero(tmp_path: Path) -> None:
    # the gateway's spool (its count of waiting lines) and `sen deadletters replay` (a second
    # connection) adding lines: the gateway writes and deletes them, its count stays at zero
    gateway = Spool(tmp_path)
    other = Spool(tmp_path)
    other.commit(_lines(3))
    other.close()
    assert gateway.pending == 0 and gateway.depth() == 3
    batch = gateway.oldest(2)
    assert batch is not None
    gateway.delete(batch.ids)
    assert gateway.pending == 0 and gateway.depth() == 1
    gateway.commit(_lines(2, start=10))
    assert gateway.pending == 2 and gateway.depth() == 3
    gateway.close()


def test_a_delete_told_its_lines_keeps_the_count_even_when_another_process_took_some_rows(tmp_path: Path) -> None:
    # the writer tells delete() how many lines its batch held (no count query); when another
    # process (`sen deadletters replay`, an operator) deleted some of those rows first, they
    # leave the running count too (a count of what was left took only the rest off)
    gateway = Spool(tmp_path)
    gateway.commit(_lines(6))
    batch = gateway.oldest(4)
    assert batch is not None
    gateway.delete(batch.ids, lines=len(batch))
    assert gateway.pending == 2 == gateway.depth()
    gateway.commit(_lines(4, start=10))
    batch = gateway.oldest(4)
    assert batch is not None and gateway.pending == 6
    other = Spool(tmp_path)
    other.delete(batch.ids[:2])
    other.close()
    gateway.delete(batch.ids, lines=len(batch))
    assert gateway.pending == 2 == gateway.depth()
    assert gateway._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: the delete's
    gateway.commit(_lines(1, start=20))
    assert gateway._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: set before BEGIN
    gateway.close()
    again = Spool(tmp_path)  # the unsynced delete is in the file for the next process
    assert again.depth() == 3
    left = again.oldest(10)
    assert left is not None and left.lines == ("m x=12.0 12", "m x=13.0 13", "m x=20.0 20")
    again.close()


def test_duplicate_keys_are_skipped_even_after_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.commit(_lines(3)).added == 3
    spool.close()
    spool = Spool(tmp_path)
    result = spool.commit(_lines(5))  # 0..4: 0..2 were seen
    assert (result.added, result.duplicates) == (2, 3)
    assert spool.commit([Entry(line="m x=1.0 1"), Entry(line="m x=1.0 1")]).added == 2  # no key
    assert spool.depth() == 7
    assert spool.forget_keys_before(10**15) == 5
    assert spool.commit(_lines(1)).added == 1
    spool.close()


def test_dead_letters(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add_dead_letter(source="mqtt:sen/v1/a/b/telemetry", reason="not_json", detail="x", raw=b"\xff")
    spool.commit(_lines(2))
    batch = spool.oldest(1)
    assert batch is not None
    spool.set_aside(batch.ids, reason="influx_http_400", detail="bad field")
    letters = spool.dead_letters()
    assert [(d.source, d.reason, d.raw) for d in letters] == [
        ("mqtt:sen/v1/a/b/telemetry", "not_json", b"\xff"),
        ("influx", "influx_http_400", b"m x=0.0 0"),
    ]
    assert spool.depth() == 1
    spool.close()
