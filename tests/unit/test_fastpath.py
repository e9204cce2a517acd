"""gateway/service/fastpath.c against the Python it stands in for: readings.python_readings and
points.python_lines give the same result for every input, or the C says "not mine" (None) and the
Python runs. Also: nothing it touches is left with a reference too many or too few."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.service import decode, points, readings
from gateway.service.topics import Topic
from gateway.service.readings import Decoded, python_readings

fast = readings.compiled_pass
built = pytest.mark.skipif(fast is None, reason="fastpath.c not built here")
_taken = {"readings": 0, "lines": 0, "envelopes": 0, "with_d": 0}

values = st.one_of(st.floats(), st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.integers(min_value=-(2**64), max_value=2**64),
                   st.sampled_from([2**63 - 1, -(2**63) + 1, -(2**63), 2**53 + 1, 0, -0.0, 1e16, 1e-7, 5e-324]),
                   st.booleans(), st.none(), st.just("7"))
names = st.one_of(st.sampled_from(["temp_c", "rh_pct", "p_hpa", "co2_ppm", "a" * 64, "b", "ba", "a_", "a0"]),
                  st.sampled_from(["seq", "boot", "time", "sensor", "Temp", "a b", "x" * 65, "", "_x", "t{0}",
                                   "tempé", "0a"]))
reading = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=-1, max_value=2**33),
                      st.just(True)),
     "m": st.one_of(st.dictionaries(names, values, max_size=6), st.just([]))},
    optional={"ts": st.one_of(st.integers(min_value=0, max_value=4_102_444_800_000), st.just(-1), st.just(1.5)),
              "up": st.one_of(st.integers(min_value=0, max_value=2**42), st.just(2**42 + 1)),
              "s": st.one_of(st.sampled_from(["sht31", "dht20", "soil-1", "a" * 32]),
                             st.sampled_from(["SHT", "", None, 3, "a" * 33, "sö"]))})
usual = st.fixed_dictionaries(  # what boards send: most messages are all of these
    {"seq": st.integers(min_value=0, max_value=2**32 - 1),
     "m": st.dictionaries(st.sampled_from(["temp_c", "rh_pct", "p_hpa", "a" * 64, "b", "ba", "a_", "a0"]),
                          st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()), max_size=5),
     "ts": st.integers(min_value=0, max_value=4_102_444_800_000)},
    optional={"s": st.sampled_from(["sht31", "dht20", "soil-1"])})
messages = st.tuples(st.one_of(st.lists(usual, max_size=6),
                               st.lists(st.one_of(usual, reading, reading, st.just(3)), max_size=6)),
                     st.one_of(st.none(), st.integers(min_value=0, max_value=2**31)),
                     st.integers(min_value=0, max_value=2**32 - 1))


@built
@settings(max_examples=1000, derandomize=True, deadline=None, database=None)
@given(message=messages)
def test_the_c_readings_are_the_python_ones_or_none(message: tuple[list[Any], int | None, int]) -> None:
    raw, envelope_up, boot = message
    assert fast is not None
    python, c = python_readings(raw, envelope_up, boot), fast.readings(raw, envelope_up, boot)
    if c is not None:
        _taken["readings"] += 1
        assert type(c) is Decoded and all(type(r) is readings.Reading for r in c.readings)
        assert c == python
        for ours, theirs in zip(c.readings, python.readings, strict=True):  # type: ignore[union-attr]
            assert [type(v) for v in ours.metrics.values()] == [type(v) for v in theirs.metrics.values()]
            assert list(ours.metrics) == list(theirs.metrics)
    assert readings.fast_readings(raw, envelope_up, boot) == python


@built
@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(message=messages, anchor=st.one_of(st.none(), st.integers(min_value=0, max_value=2**41)),
       tags=st.sampled_from([("lab", "dev-1", "esp32"), ("farm_2", "b", "yolo-uno")]))
def test_the_c_lines_are_the_python_ones_or_none(message: tuple[list[Any], int | None, int],
                                                 anchor: int | None, tags: tuple[str, str, str]) -> None:
    assert fast is not None
    raw, envelope_up, boot = message
    decoded = python_readings(raw, envelope_up, boot)
    if decoded is None:
        return
    c = fast.lines(decoded.readings, decoded.fields, points._head, *tags, anchor)
    try:
        python = points.python_lines(decoded.readings, list(decoded.fields), *tags, anchor)
    except points.AnchorMissing:
        assert c is None
        return
    if c is not None:
        _taken["lines"] += 1
        assert c == python


_small = st.integers(min_value=0, max_value=2**32 - 1)
_diags = st.dictionaries(  # what boards send in d, and strings the C leaves to the Python
    st.sampled_from(["rssi_dbm", "heap_free", "ota", "op", "seq"]),
    st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.floats(), st.booleans(),
              st.text(max_size=70), st.sampled_from(["Viettel", "x" * 64, "x" * 65, "a\tb", "tab\x7f", "é"])),
    max_size=4)
_odd = st.sampled_from([-1, 2**32, True, 1.0, "1", None])
envelopes = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), st.sampled_from([1.0, True, 2, "1"])),
     "dev": st.one_of(st.just("dev-1"), st.sampled_from(["dev-2", "Dev-1", 7])),
     "boot": st.one_of(_small, _odd), "r": st.one_of(messages.map(lambda m: m[0]), st.just({}))},
    optional={"fid": st.one_of(_small, _odd), "up": st.one_of(st.integers(min_value=0, max_value=2**42 + 1), _odd),
              "lo": st.one_of(_small, _odd), "ob": st.one_of(st.integers(min_value=0, max_value=9), _odd),
              "board": st.one_of(st.sampled_from(["esp32", "yolo-uno"]), st.sampled_from(["", "Yolo", 3, None])),
              "d": st.one_of(_diags, st.dictionaries(st.sampled_from(["heap", "seq", "Rssi", "x" * 65]), values,
                                                     max_size=2), st.just([])),
              "x": st.just("an unknown key")})

usual_envelopes = st.fixed_dictionaries(  # what boards send
    {"v": st.just(1), "dev": st.just("dev-1"), "boot": _small, "r": st.lists(usual, max_size=6)},
    optional={"fid": _small, "up": st.integers(min_value=0, max_value=2**42), "lo": _small,
              "ob": st.integers(min_value=0, max_value=9), "board": st.sampled_from(["esp32", "yolo-uno"]),
              "d": _diags})


@built
@settings(max_examples=1000, derandomize=True, deadline=None, database=None)
@given(doc=st.one_of(usual_envelopes, envelopes))
def test_the_c_envelope_is_the_python_one_or_none(doc: dict[str, Any]) -> None:
    assert fast is not None
    topic = Topic(site="lab", device="dev-1", kind="telemetry")
    c = fast.telemetry(doc, topic.site, topic.device)
    if c is None:
        return
    _taken["envelopes"] += 1
    _taken["with_d"] += bool(doc.get("d"))
    python = decode._telemetry(topic, b"{}", doc)
    assert type(c) is decode.Telemetry and c == python
    assert (c.fields, c.key, c.needs_anchor) == (python.fields, python.key, python.needs_anchor)
    assert type(c.key) is type(python.key) and c.__dict__ == python.__dict__


@built
def test_both_comparisons_saw_the_c_take_messages() -> None:
    assert _taken["readings"] > 500 and _taken["lines"] > 200 and _taken["envelopes"] > 300
    assert _taken["with_d"] > 50, _taken


@built
def test_sensors_that_alternate_get_each_its_tags_and_newest_time() -> None:
    assert fast is not None
    raw = [{"seq": i, "ts": 1000 + (7 - i) * 10, "s": ["sht31", "soil-1", "sht31"][i % 3], "m": {"t": i}}
           for i in range(8)] + [{"seq": 9, "up": 5, "m": {}}]
    decoded = fast.readings(raw, 50, 4)
    assert decoded is not None and decoded.uptime_only
    found = fast.lines(decoded.readings, decoded.fields, points._head, "lab", "d", "esp32", 2000)
    assert found == points.python_lines(decoded.readings, decoded.fields, "lab", "d", "esp32", 2000)
    lines, newest, sensors = found
    assert lines[1] == "telemetry,board=esp32,device=d,sensor=soil-1,site=lab boot=4i,seq=1i,t=1.0 1060"
    assert lines[8] == "telemetry,board=esp32,device=d,site=lab boot=4i,seq=9i 2005"
    assert (newest, sensors) == (2005, {"sht31": 1070, "soil-1": 1060})
    assert fast.lines(decoded.readings, decoded.fields, points._head, "lab", "d", "esp32", None) is None


# A sensor's value: a few decimals at any size, and any double near the C's own bounds (it
# writes 1e-4 <= |v| < 1e9 with up to 6 decimals itself, the rest through Python's dtoa).
decimals = st.builds(lambda m, k, sign: sign * m / 10**k, st.integers(min_value=0, max_value=10**13),
                     st.integers(min_value=0, max_value=9), st.sampled_from([1, -1]))
near_bounds = st.sampled_from([1e-4, 9.9999e-5, 1.00001e-4, 999_999_999.999999, 999_999_999.9999999, 1e9,
                               0.1 + 0.2, 1 / 3, 2.5, 0.5, 123456.7890125, 5e-324, 2**53 + 0.0, -0.0, 0.0])


@built
@settings(max_examples=3000, derandomize=True, deadline=None, database=None)
@given(value=st.one_of(decimals, near_bounds, st.floats(min_value=-2e9, max_value=2e9),
                       st.floats(allow_nan=False, allow_infinity=False)))
def test_the_c_writes_every_float_as_repr_does(value: float) -> None:
    raw = [{"seq": 1, "ts": 5, "m": {"v": value}}]
    assert fast is not None
    found = fast.readings(raw, None, 1)
    assert found is not None and found.fields[0] == f"boot=1i,seq=1i,v={value!r}"


@built
def test_more_metrics_than_the_c_takes_go_to_the_python() -> None:
    assert fast is not None
    many = {"seq": 1, "ts": 5, "m": {f"m{i:02d}": float(i) for i in range(40)}}
    assert fast.readings([many], None, 1) is None
    found = readings.fast_readings([many], None, 1)
    assert found is not None and found.fields[0].startswith("boot=1i,m00=0.0,m01=1.0,")


@built
def test_nothing_keeps_a_reference_it_should_not() -> None:
    assert fast is not None
    metrics, as_floats, sensor = {"t": 21.5, "h": 40.25}, {"t": 21, "h": 2**60}, "sht31"
    raw = [{"seq": 1, "ts": 1000, "s": sensor, "m": metrics}, {"seq": 2, "up": 77, "m": as_floats}]
    refused = [{"seq": 1, "ts": 1000, "m": metrics}, {"seq": 2, "ts": 5, "m": {"t": float("nan")}}]
    doc = {"v": 1, "dev": "d", "boot": 3, "up": 10, "board": "esp32", "r": raw, "d": {"rssi_dbm": -60, "op": "VN"}}
    with_d = dict(doc, d={"rssi_dbm": -60, "op": "Việt"})  # not ASCII: the Python's
    watched = [metrics, as_floats, sensor, raw[0], raw[1], refused[0], doc, raw, doc["board"], doc["d"], with_d["d"]]
    shared = [None, True, False]  # everyone's: others move their counts a little meanwhile

    def counts() -> list[int]:
        return [sys.getrefcount(item) for item in watched + shared]

    for _ in range(3):  # warm: the head cache, interned strings
        decoded = fast.readings(raw, 10, 3)
        assert decoded is not None
        fast.lines(decoded.readings, decoded.fields, points._head, "lab", "d", "esp32", 5)
        del decoded
    before = counts()
    for _ in range(1000):
        decoded = fast.readings(raw, 10, 3)
        assert decoded is not None and fast.readings(refused, None, 3) is None
        assert fast.lines(decoded.readings, decoded.fields, points._head, "lab", "d", "esp32", 5) is not None
        assert fast.lines(decoded.readings, decoded.fields, points._head, "lab", "d", "esp32", None) is None
        assert fast.telemetry(doc, "lab", "d") is not None and fast.telemetry(with_d, "lab", "d") is None
        assert fast.telemetry(doc, "lab", "other") is None
        del decoded
    after = counts()
    assert after[:len(watched)] == before[:len(watched)]
    assert all(abs(a - b) < 100 for a, b in zip(after, before, strict=True)), (before, after)  # 1,000 calls


def test_the_c_is_built_where_there_is_a_compiler() -> None:
    # Optional in setup.py, so that a machine without one still installs: here it must be there.
    assert os.environ.get("SEN_PURE_PYTHON") or fast is not None
