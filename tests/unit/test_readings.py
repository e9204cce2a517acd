"""The one-pass reading decoder (gateway/service/readings.py) against the careful path and the
line-protocol encoder: the same readings, the same refusals, the same lines, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.service import decode
from gateway.service.decode import Reject, Telemetry, decode_telemetry
from gateway.service.points import to_entries
from gateway.service.readings import fast_readings
from gateway.service.topics import Topic
from ingest.lineproto import Point, encode

TOPIC = Topic(site="lab", device="dev-1", kind="telemetry")
_seen = {"inputs": 0, "one_pass": 0, "refused": 0}

# Mostly what boards send, with the odd thing the one pass must give up on.
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(),
                   st.integers(min_value=-(2**64), max_value=2**64), st.booleans(), st.none(), st.just("7"))
names = st.one_of(st.sampled_from(["temp_c", "rh_pct", "p_hpa", "co2_ppm", "a" * 64]),
                  st.sampled_from(["seq", "boot", "sensor", "Temp", "a b", "x" * 65, "", "_x", "t{0}"]))
reading = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=-1, max_value=2**33)),
     "m": st.one_of(st.dictionaries(names, values, max_size=4), st.just([]))},
    optional={"ts": st.one_of(st.integers(min_value=0, max_value=4_102_444_800_000), st.just(-1), st.just(1.5)),
              "up": st.one_of(st.integers(min_value=0, max_value=2**42), st.just(2**42 + 1)),
              "s": st.one_of(st.sampled_from(["sht31", "dht20", "soil-1"]), st.sampled_from(["SHT", "", None, 3]))})
envelope = st.fixed_dictionaries(
    {"v": st.just(1), "dev": st.just("dev-1"), "boot": st.integers(min_value=0, max_value=2**32 - 1),
     "r": st.lists(st.one_of(reading, st.just(3)), max_size=5)},
    optional={"up": st.integers(min_value=0, max_value=2**31), "board": st.sampled_from(["esp32", "yolo-uno"]),
              "d": st.just({"rssi_dbm": -60})})


def _careful(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> Telemetry | Reject:
    with monkeypatch.context() as patched:
        patched.setattr(decode, "fast_readings", lambda *args: None)
        patched.setattr(decode, "_c_telemetry", None)
        patched.setattr(decode, "_c_message", None)
        return decode_telemetry(TOPIC, payload)


def _lines(telemetry: Telemetry) -> list[str]:
    entries = to_entries(telemetry, anchor_ms=1_000, received_ms=2_000)
    return [e.line for e in entries if e.line.startswith("telemetry,")]


def _encoded(telemetry: Telemetry) -> list[str]:
    """Each reading's line as the general encoder writes it from a Point."""
    lines = []
    for r in telemetry.readings:
        tags = {"site": telemetry.site, "device": telemetry.device, "board": telemetry.board, "sensor": r.sensor or ""}
        fields: dict[str, Any] = dict(r.metrics, seq=r.seq, boot=telemetry.boot)
        ts = r.ts_ms if r.ts_ms is not None else 1_000 + (r.up_ms or 0)
        lines.append(encode(Point(measurement="telemetry", tags=tags, fields=fields, ts_ms=ts)))
    return lines


@settings(max_examples=600, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=envelope)
def test_one_pass_decodes_as_the_careful_path_and_writes_the_encoders_lines(
        doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    payload = json.dumps(doc).encode()
    fast, careful = decode_telemetry(TOPIC, payload), _careful(payload, monkeypatch)
    assert fast == careful
    _seen["inputs"] += 1
    _seen["refused" if isinstance(fast, Reject) else "one_pass"] += 1
    if isinstance(fast, Telemetry):  # all the careful path accepts, the one pass accepts too
        assert isinstance(careful, Telemetry) and careful.fields is None and careful.lines is None
        assert fast.fields is not None or fast.lines is not None
        assert fast.needs_anchor == careful.needs_anchor
        lines = _lines(fast)
        assert lines == _lines(careful) == _encoded(fast)


def test_the_comparison_saw_messages_taken_and_refused() -> None:
    if not _seen["inputs"]:
        pytest.skip("runs after the comparison, in the same process")
    assert min(_seen.values()) >= 60, _seen


def test_the_one_pass_takes_the_usual_and_gives_up_on_the_unusual() -> None:
    usual = {"seq": 5, "ts": 1_763_800_000_000, "s": "sht31", "m": {"temp_c": 21.5, "rh_pct": 40}}
    got = fast_readings([usual], None, 3)
    assert got is not None and got.fields == ("boot=3i,rh_pct=40.0,seq=5i,temp_c=21.5",) and not got.uptime_only
    assert got.readings[0].metrics == {"temp_c": 21.5, "rh_pct": 40.0}  # an integer value is a float
    up = fast_readings([{"seq": 1, "up": 10, "m": {}}], 20, 3)
    assert up is not None and up.uptime_only and up.fields == ("boot=3i,seq=1i",)
    for odd in ({"m": {"seq": 1.0}}, {"m": {"Temp": 1.0}}, {"m": {"t": True}}, {"m": {"t": float("nan")}},
                {"m": {"t": 2**64}}, {"s": "SHT 31"}, {"s": None}, {"seq": -1}, {"ts": 1.5}, {"m": []}):
        assert fast_readings([dict(usual, **odd)], None, 3) is None, odd
    assert fast_readings([{"seq": 1, "up": 10, "m": {}}], None, 3) is None  # 'up' needs the envelope's


def test_the_compiled_fields_are_the_templates_and_take_only_metric_names() -> None:
    from gateway.service.readings import compiled, template

    for names in [(), ("temp_c",), ("rh_pct", "temp_c", "a" * 64), tuple(f"m{i:02d}" for i in range(30))]:
        values = tuple(i / 7 - 3 for i in range(len(names)))
        assert compiled(names)(12, 3, *values) == template(names).format(12, 3, *values)
    for bad in (('t"', ), ("t{0}",), ("T",), ("a b",), ("t\\",), ("",)):
        with pytest.raises(ValueError, match="not metric names"):
            compiled(bad)


def test_names_are_compiled_the_second_time_they_come_so_a_flood_of_new_ones_compiles_nothing() -> None:
    from gateway.service import readings

    def one(names: list[str]) -> tuple[str, ...] | None:  # the Python pass (C caches nothing)
        got = readings.python_readings([{"seq": 1, "ts": 5, "m": dict.fromkeys(names, 1.5)}], None, 2)
        return got.fields if got else None

    before = len(readings._CHECKED)
    for i in range(200):  # each set of names once
        assert one([f"flood_{i}"]) == (f"boot=2i,flood_{i}=1.5,seq=1i",)
    assert len(readings._CHECKED) == before
    assert one(["flood_7"]) == ("boot=2i,flood_7=1.5,seq=1i",)  # again: compiled, and kept
    assert readings._CHECKED[("flood_7",)].__name__ == "<lambda>" and len(readings._CHECKED) == before + 1
