"""The writer with two writes in flight (``in_flight=2``): a second lane writes only while a full
batch waits behind the first, never the same lines, never in an outage; and the spool's
``oldest(skip=...)`` it takes its batch with."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import InfluxBadData, InfluxUnavailable
from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Writer

_BATCH = 10


class GatedSink:
    """Holds every write until ``gate`` is set; counts the writes on their way at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []  # written, in the order they were answered
        self.flying = self.most_flying = self.attempts = 0
        self.down = 0  # this many writes fail as unavailable
        self.one_flying, self.two_flying = threading.Event(), threading.Event()

    def write(self, payload: bytes) -> None:
        lines = payload.decode().splitlines()
        with self.lock:
            self.attempts += 1
            self.flying += 1
            self.most_flying = max(self.most_flying, self.flying)
            (self.one_flying if self.flying == 1 else self.two_flying).set()
        try:
            self.gate.wait(10)
            with self.lock:
                if self.down:
                    self.down -= 1
                    raise InfluxUnavailable("down")
                if any("bad" in line for line in lines):
                    raise InfluxBadData(400, "unable to parse")
                self.batches.append(lines)
        finally:
            with self.lock:
                self.flying -= 1

    def create_database(self) -> None:
        return None

    @property
    def lines(self) -> list[str]:
        return [line for batch in self.batches for line in batch]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path)
    yield s
    s.close()


def _lines(start: int, stop: int) -> list[str]:
    return [f"m x={i}.0 {i}" for i in range(start, stop)]


def _writer(spool: Spool, sink: GatedSink) -> Writer:
    return Writer(spool, sink, batch_size=_BATCH, flush_interval_s=60.0, in_flight=2,
                  backoff=Backoff(initial_s=0.01, max_s=0.05))


def test_a_backlog_goes_out_two_batches_at_a_time_each_line_once(spool: Spool) -> None:
    spool.commit([Entry(line=line) for line in _lines(0, 5 * _BATCH)])
    sink = GatedSink()
    writer = _writer(spool, sink)
    writer.start()
    assert sink.two_flying.wait(5)  # the second lane took a batch while the first was on its way
    sink.gate.set()
    assert writer.wait_idle(10)
    writer.stop(flush_timeout_s=5)
    assert sorted(sink.lines, key=lambda line: int(line.split()[-1])) == _lines(0, 5 * _BATCH)
    assert sink.most_flying == 2 and all(len(batch) == _BATCH for batch in sink.batches)
    assert writer.stats.written == 5 * _BATCH and writer.stats.batches == 5 and spool.depth() == 0


def test_less_than_a_full_batch_behind_the_write_waits_for_it(spool: Spool) -> None:
    # Low load: one write at a time, whatever waits going out together in the next.
    sink = GatedSink()
    writer = _writer(spool, sink)
    writer.start()
    spool.commit([Entry(line=line) for line in _lines(0, 3)])
    writer.notify()
    assert sink.one_flying.wait(5)
    for n in range(3, _BATCH + 2):  # one line short of a full batch behind the first write
        spool.commit([Entry(line=line) for line in _lines(n, n + 1)])
        writer.notify()
    assert not sink.two_flying.wait(0.3)
    sink.gate.set()
    assert writer.wait_idle(10)
    writer.stop(flush_timeout_s=5)
    assert sink.most_flying == 1 and [len(batch) for batch in sink.batches] == [3, _BATCH - 1]
    assert sink.lines == _lines(0, _BATCH + 2)


def test_through_an_outage_two_lanes_lose_and_double_nothing(spool: Spool) -> None:
    spool.commit([Entry(line=line) for line in _lines(0, 4 * _BATCH)])
    sink = GatedSink()
    sink.down = 6
    writer = _writer(spool, sink)
    writer.start()
    sink.gate.set()
    assert writer.wait_idle(10)
    writer.stop(flush_timeout_s=5)
    assert sorted(sink.lines, key=lambda line: int(line.split()[-1])) == _lines(0, 4 * _BATCH)
    assert writer.stats.failures == 6 and sink.attempts == 6 + 4


def test_a_refused_line_in_the_second_lanes_batch_is_set_aside_alone(spool: Spool) -> None:
    lines = _lines(0, 3 * _BATCH)
    lines[_BATCH + 4] = "m bad=1.0 14"  # in the second batch, which the second lane takes
    spool.commit([Entry(line=line) for line in lines])
    sink = GatedSink()
    writer = _writer(spool, sink)
    writer.start()
    assert sink.two_flying.wait(5)
    sink.gate.set()
    assert writer.wait_idle(10)
    writer.stop(flush_timeout_s=5)
    assert sorted(sink.lines, key=lambda line: int(line.split()[-1])) == [line for line in lines if "bad" not in line]
    assert [d.raw for d in spool.dead_letters()] == [b"m bad=1.0 14"]


def test_oldest_skips_the_rows_of_batches_on_their_way(spool: Spool) -> None:
    spool.commit([Entry(line=line) for line in _lines(0, 10)])
    first = spool.oldest(3)
    assert first is not None and first.lines == tuple(_lines(0, 3))
    second = spool.oldest(3, skip=[(first.ids[0], first.ids[-1])])
    assert second is not None and second.lines == tuple(_lines(3, 6))
    rest = spool.oldest(100, skip=[(first.ids[0], first.ids[-1]), (second.ids[0], second.ids[-1])])
    assert rest is not None and rest.lines == tuple(_lines(6, 10))
    everything = (first.ids[0], rest.ids[-1])
    assert spool.oldest(100, skip=[everything]) is None
    assert spool.pending == 10  # nothing outside the skipped rows is not an empty spool
