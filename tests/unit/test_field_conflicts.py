"""A field type conflict sets aside only the conflicting field: the line is taken apart safely
(lineproto.split_field), written again without it, and the writer's counters stay honest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import InfluxBadData, InfluxUnavailable
from ingest.lineproto import Point, encode, split_field, split_fields
from ingest.ranges import Run
from ingest.refusals import conflict_field
from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Writer

# What InfluxDB 1.6 answers (the body of the 400, as the v1 sink passes it on).
V1_ANSWER = ('{"error":"partial write: field type conflict: input field \\"%s\\" on measurement '
             '\\"telemetry\\" is type float, already exists as type integer dropped=1"}')


def test_the_conflicting_field_is_read_from_influxdbs_answer() -> None:
    assert conflict_field(V1_ANSWER % "temp_c") == "temp_c"
    plain = ('partial write: field type conflict: input field "a b" on measurement "telemetry" '
             "is type string, already exists as type float dropped=1")
    assert conflict_field(plain) == "a b"
    assert conflict_field('{"error":"unable to parse \'x\': bad timestamp"}') is None
    assert conflict_field("field type conflict") is None


def test_a_line_is_split_without_breaking_its_escapes() -> None:
    line = encode(Point(measurement="my meas,x", tags={"t k,=": "v a,l=ue"},
                        fields={"f k=,": 'say "hi", a=b \\ bye', "x": 1.5, "seq": 3}, ts_ms=1763800000123))
    series, fields, ts = split_fields(line)
    assert series == "my\\ meas\\,x,t\\ k\\,\\==v\\ a\\,l\\=ue" and ts == "1763800000123"
    assert [key for key, _ in fields] == ["f k=,", "seq", "x"]
    rest, alone = split_field(line, "x") or ("", "")
    assert rest == encode(Point(measurement="my meas,x", tags={"t k,=": "v a,l=ue"},
                                fields={"f k=,": 'say "hi", a=b \\ bye', "seq": 3}, ts_ms=1763800000123))
    assert alone == encode(Point(measurement="my meas,x", tags={"t k,=": "v a,l=ue"},
                                 fields={"x": 1.5}, ts_ms=1763800000123))
    rest, alone = split_field(line, "f k=,") or ("", "")
    assert alone.endswith(' f\\ k\\=\\,="say \\"hi\\", a=b \\\\ bye" 1763800000123')
    assert split_field(line, "nope") is None
    assert split_field("m x=1.0 5", "x") is None  # nothing would be left
    assert split_field("m x=1.0,y=2i", "x") == ("m y=2i", "m x=1.0")  # no timestamp


class TypedSink:
    """Like InfluxDB 1.x: a field keeps its first type; a batch with a conflict is written in
    part (every other point) and answered 400 naming the first conflicting field."""

    def __init__(self, types: dict[str, str]) -> None:
        self.types = dict(types)
        self.points: dict[tuple[str, str], dict[str, str]] = {}  # (series, ts) -> fields
        self.writes = 0
        self.down_after: int | None = None
        self.lock = threading.Lock()

    @staticmethod
    def _kind(value: str) -> str:
        return "integer" if value.endswith("i") else "string" if value.startswith('"') else "float"

    def write(self, payload: bytes) -> None:
        with self.lock:
            self.writes += 1
            if self.down_after is not None and self.writes > self.down_after:
                raise InfluxUnavailable("down")
            conflicts = []
            for line in payload.decode().splitlines():
                series, fields, ts = split_fields(line)
                bad = [k for k, text in fields if self.types.get(k, self._kind(text.split("=", 1)[1]))
                       != self._kind(text.split("=", 1)[1])]
                if bad:
                    conflicts.append(bad[0])
                    continue
                for key, text in fields:
                    self.types.setdefault(key, self._kind(text.split("=", 1)[1]))
                    self.points.setdefault((series, ts), {})[key] = text.split("=", 1)[1]
            if conflicts:
                raise InfluxBadData(400, V1_ANSWER % conflicts[0])

    def create_database(self) -> None:
        pass


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path)
    yield s
    s.close()


def _drain(spool: Spool, sink: TypedSink, batch_size: int = 100) -> Writer:
    writer = Writer(spool, sink, batch_size=batch_size, flush_interval_s=0.0,
                    backoff=Backoff(initial_s=0.01, max_s=0.05))
    writer.start()
    assert writer.wait_idle(10)
    writer.stop()
    return writer


def _line(seq: int, **fields: str) -> str:
    body = ",".join(f"{k}={v}" for k, v in sorted({**fields, "seq": f"{seq}i", "boot": "1i"}.items()))
    return f"telemetry,device=d1,site=lab {body} {1000 + seq}"


def test_only_the_conflicting_field_is_set_aside(spool: Spool) -> None:
    sink = TypedSink({"x": "integer"})
    lines = [_line(1, temp_c="20.5"), _line(2, temp_c="21.5", x="1.5"), _line(3, temp_c="22.5")]
    spool.commit([Entry(line=line) for line in lines])
    writer = _drain(spool, sink)
    key = ("telemetry,device=d1,site=lab", "1002")
    assert sink.points[key] == {"boot": "1i", "seq": "2i", "temp_c": "21.5"}  # all but x landed
    assert len(sink.points) == 3
    letters = spool.dead_letters()
    assert [(d.source, d.reason, d.raw) for d in letters] == [
        ("influx", "influx_http_400", b"telemetry,device=d1,site=lab x=1.5 1002")]
    assert 'input field \\"x\\"' in letters[0].detail
    # Partial writes made InfluxDB take some lines more than once; each is counted once.
    assert (writer.stats.written, writer.stats.set_aside, writer.stats.fields_set_aside) == (3, 0, 1)
    assert spool.depth() == 0


def test_several_conflicts_in_one_row_of_a_message(spool: Spool) -> None:
    sink = TypedSink({"x": "integer", "y": "string"})
    lines = (_line(1, temp_c="1.5"), _line(2, x="2.5", y="3.5", temp_c="4.5"), _line(3, x="5.5"))
    spool.commit([Run(stream="r/d1/1", seqs=(1, 2, 3), lines=lines)])
    writer = _drain(spool, sink)
    assert sink.points[("telemetry,device=d1,site=lab", "1002")] == {"boot": "1i", "seq": "2i", "temp_c": "4.5"}
    assert sink.points[("telemetry,device=d1,site=lab", "1003")] == {"boot": "1i", "seq": "3i"}
    assert sorted(d.raw for d in spool.dead_letters()) == [
        b"telemetry,device=d1,site=lab x=2.5 1002", b"telemetry,device=d1,site=lab x=5.5 1003",
        b"telemetry,device=d1,site=lab y=3.5 1002"]
    assert (writer.stats.written, writer.stats.set_aside, writer.stats.fields_set_aside) == (3, 0, 3)


def test_a_line_with_nothing_else_is_set_aside_whole(spool: Spool) -> None:
    sink = TypedSink({"x": "integer"})
    spool.commit([Entry(line="telemetry,device=d1 x=1.5 7")])
    writer = _drain(spool, sink)
    assert [d.raw for d in spool.dead_letters()] == [b"telemetry,device=d1 x=1.5 7"]
    assert (writer.stats.written, writer.stats.set_aside, writer.stats.fields_set_aside) == (0, 1, 0)


def test_an_outage_while_splitting_keeps_the_row_and_counts_nothing_twice(spool: Spool) -> None:
    sink = TypedSink({"x": "integer"})
    sink.down_after = 1  # the batch: 400; the line without x: InfluxDB is down
    spool.commit([Entry(line=_line(1, temp_c="1.5", x="2.5"))])
    writer = Writer(spool, sink, batch_size=100, flush_interval_s=0.0, backoff=Backoff(initial_s=0.01, max_s=0.05))
    writer.start()
    try:
        for _ in range(100):
            if writer.stats.failures:
                break
            threading.Event().wait(0.02)
        assert spool.depth() == 1 and spool.dead_letters() == []
        sink.down_after = None
        assert writer.wait_idle(10)
    finally:
        writer.stop()
    assert [d.raw for d in spool.dead_letters()] == [b"telemetry,device=d1,site=lab x=2.5 1001"]
    assert (writer.stats.written, writer.stats.set_aside, writer.stats.fields_set_aside) == (1, 0, 1)
