"""The writer thread against a scripted sink: batching, retry, narrowing bad data."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.errors import InfluxBadData, InfluxDatabaseMissing, InfluxUnavailable
from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Writer


class FakeSink:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.writes: list[int] = []  # lines per successful write
        self.down = 0  # this many writes fail as unavailable
        self.missing = False
        self.created = 0
        self.lock = threading.Lock()

    def write(self, payload: bytes) -> None:
        lines = payload.decode().splitlines()
        with self.lock:
            if self.down:
                self.down -= 1
                raise InfluxUnavailable("down")
            if self.missing:
                raise InfluxDatabaseMissing("no db")
            if any("bad" in line for line in lines):
                raise InfluxBadData(400, "field type conflict")
            self.lines.extend(lines)
            self.writes.append(len(lines))

    def create_database(self) -> None:
        with self.lock:
            if self.down:
                self.down -= 1
                raise InfluxUnavailable("down")
            self.created += 1
            self.missing = False


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path)
    yield s
    s.close()


def _writer(spool: Spool, sink: FakeSink, **kw: float) -> Writer:
    return Writer(spool, sink, batch_size=int(kw.get("batch_size", 4)),
                  flush_interval_s=kw.get("flush_interval_s", 0.0),
                  backoff=Backoff(initial_s=0.01, max_s=0.05))


def test_everything_is_written_in_order_after_outages(spool: Spool) -> None:
    sink = FakeSink()
    sink.down, sink.missing = 3, True
    spool.commit([Entry(line=f"m x={i}.0 {i}") for i in range(10)])
    writer = _writer(spool, sink)
    writer.start()
    assert writer.wait_idle(10)
    writer.stop()
    assert sink.lines == [f"m x={i}.0 {i}" for i in range(10)]
    assert sink.created == 1 and writer.stats.failures == 3 and writer.stats.written == 10


def test_refused_lines_are_set_aside_and_the_rest_written(spool: Spool) -> None:
    sink = FakeSink()
    lines = [f"m x={i}.0 {i}" for i in range(7)]
    lines[4] = "m bad=1.0 4"
    spool.commit([Entry(line=line) for line in lines])
    writer = _writer(spool, sink, batch_size=8)
    writer.start()
    assert writer.wait_idle(10)
    writer.stop()
    assert sink.lines == [line for line in lines if "bad" not in line]
    assert [d.raw for d in spool.dead_letters()] == [b"m bad=1.0 4"]


def test_an_idle_writer_writes_a_single_line_at_once(spool: Spool) -> None:
    # Low load: nothing in flight, so a reading never waits for a batch to fill (however
    # long the idle poll interval is).
    sink = FakeSink()
    writer = _writer(spool, sink, batch_size=100, flush_interval_s=60.0)
    writer.start()
    spool.commit([Entry(line="m x=1.0 1")])
    writer.notify()
    assert writer.wait_idle(5) and sink.lines == ["m x=1.0 1"]
    writer.stop(flush_timeout_s=5)
    assert spool.depth() == 0


def test_lines_that_arrive_during_a_write_go_out_together_in_the_next(spool: Spool) -> None:
    sink = FakeSink()
    in_write, release = threading.Event(), threading.Event()
    real_write = sink.write

    def slow_write(payload: bytes) -> None:
        in_write.set()
        release.wait(5)
        real_write(payload)

    sink.write = slow_write  # type: ignore[method-assign]
    writer = _writer(spool, sink, batch_size=100, flush_interval_s=60.0)
    writer.start()
    spool.commit([Entry(line="m x=1.0 1")])
    writer.notify()
    assert in_write.wait(5)  # the first line is on its way
    spool.commit([Entry(line=f"m x=1.0 {t}") for t in range(2, 12)])
    writer.notify()
    release.set()
    assert writer.wait_idle(5)
    writer.stop(flush_timeout_s=5)
    assert sink.writes == [1, 10]


def test_stop_while_down_keeps_lines_in_the_spool(spool: Spool) -> None:
    sink = FakeSink()
    sink.down = 10**6
    spool.commit([Entry(line="m x=1.0 1")])
    writer = _writer(spool, sink)
    writer.start()
    writer.stop(flush_timeout_s=0.2)
    assert spool.depth() == 1


def test_in_a_flood_the_next_batch_takes_the_lines_that_keep_coming(spool: Spool,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 lines came during the first write (a tenth of a batch of 100 or more: a flood); while
    # the writer waits, four looks find 10 more each, the fifth none: one write of 60, not 20 + 40.
    import ingest.gather
    import ingest.writer

    sink = FakeSink()
    in_write, release = threading.Event(), threading.Event()
    real_write = sink.write
    waited: list[float] = []

    def slow_write(payload: bytes) -> None:
        in_write.set()
        release.wait(5)
        real_write(payload)

    def flooding(waiting: Callable[[], int], batch_size: int, stopping: threading.Event, *,
                 lines_per_row: float) -> float:
        assert lines_per_row == 1.0  # one line a row here
        more = iter(range(4))

        def look() -> int:
            if looks and next(more, None) is not None:
                spool.commit([Entry(line=f"m x=2.0 {1000 + len(looks) * 10 + i}") for i in range(10)])
            looks.append(1)
            return waiting()

        looks: list[int] = []
        waited.append(ingest.gather.gather(look, batch_size, stopping, lines_per_row=lines_per_row))
        return waited[-1]

    monkeypatch.setattr(ingest.writer, "gather", flooding)
    sink.write = slow_write  # type: ignore[method-assign]
    writer = _writer(spool, sink, batch_size=100, flush_interval_s=60.0)
    writer.start()
    spool.commit([Entry(line="m x=1.0 1")])
    writer.notify()
    assert in_write.wait(5)
    spool.commit([Entry(line=f"m x=1.0 {t}") for t in range(2, 22)])
    release.set()
    assert writer.wait_idle(5)
    writer.stop(flush_timeout_s=5)
    assert sink.writes == [1, 60] and len(set(sink.lines)) == 61
    assert len(waited) == 2 and waited[0] > 0 and waited[1] == 0.0  # after the flood's 60: nothing waits
