"""gateway/service/fastpath_message.c (with fastpath_scan.c) against what it stands in for: the
message's bytes read by orjson, then decoded and turned into lines as before. For every input the C
either gives the same Telemetry, spool entries and lines, or says "not mine" (None) and the old
path runs. The inputs: envelopes as boards write them and as nobody should, spelled in many
valid ways (white space, key order, numbers as 2.15e1 or 21.50) and then broken byte by byte."""

from __future__ import annotations

import json
import re
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.service import decode, points
from gateway.service.decode import Telemetry, decode_telemetry
from gateway.service.points import spool_entries
from gateway.service.readings import compiled_pass, python_readings
from gateway.service.topics import Topic

c_message = decode._c_message
built = pytest.mark.skipif(c_message is None, reason="fastpath.c not built here")
TOPIC = Topic(site="lab", device="dev-1", kind="telemetry")
CONTRACT = Path(__file__).resolve().parents[1] / "contract"
_taken = {"inputs": 0, "mine": 0, "with_d": 0, "uptime": 0, "respelled": 0}


@contextmanager
def _pure_python() -> Iterator[None]:
    """Decoding and lines by the Python alone (the other C functions share code with this one)."""
    saved = decode._c_message, decode._c_telemetry, decode.fast_readings, points._c_lines
    decode._c_message = decode._c_telemetry = points._c_lines = None
    decode.fast_readings = python_readings
    try:
        yield
    finally:
        decode._c_message, decode._c_telemetry, decode.fast_readings, points._c_lines = saved


def _same_or_declined(payload: bytes) -> Telemetry | None:
    """The C's reading of payload, checked against the old path's; None when the C declined."""
    assert c_message is not None
    found = c_message(payload, TOPIC.site, TOPIC.device)
    _taken["inputs"] += 1
    if found is None:
        return None
    with _pure_python():
        old = decode_telemetry(TOPIC, payload)
    assert type(found) is Telemetry and type(old) is Telemetry, (payload, old)
    assert found == old
    assert (found.key, found.needs_anchor) == (old.key, old.needs_anchor) and type(found.key) is type(old.key)
    for ours, theirs in zip(found.readings, old.readings, strict=True):
        assert list(ours.metrics.items()) == list(theirs.metrics.items())
        assert all(type(v) is float for v in ours.metrics.values())
    assert [type(v) for v in found.diag.values()] == [type(v) for v in old.diag.values()]
    for anchor in (None, 1_000_000) if not found.needs_anchor else (1_000_000,):
        ours = spool_entries(found, anchor_ms=anchor, received_ms=5)
        with _pure_python():
            assert ours == spool_entries(old, anchor_ms=anchor, received_ms=5)
    assert (found.lines is None) == any(r.ts_ms is None for r in found.readings)
    _taken["mine"] += 1
    _taken["with_d"] += bool(found.diag)
    _taken["uptime"] += found.lines is None
    return found


_NUMBER = re.compile(rb'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')


def _respell(raw: bytes, how: int) -> bytes:
    """raw with each number spelled another valid way (the same value) and white space added."""
    def number(match: re.Match[bytes]) -> bytes:
        text = match.group(1)
        if text is None:
            return match.group(0)
        if b"." not in text and b"e" not in text and b"E" not in text:
            return text if how % 3 else text + b".0" if how % 5 == 1 else text  # 5 -> 5.0: a float now
        value = float(text)
        return [text, b"%.17e" % value, repr(value).encode() + b"0" if "e" not in repr(value) else text,
                (b"%.17E" % value).replace(b"E+", b"E"), text][how % 5]
    spelled = _NUMBER.sub(number, raw)
    if how % 2:
        spelled = spelled.replace(b",", b" ,\n\t").replace(b":", b" : ")
    return b"  " + spelled + b"\r\n" if how % 7 == 3 else spelled


_small = st.integers(min_value=0, max_value=2**32 - 1)
_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(width=32, allow_nan=False,
                                                                                allow_infinity=False),
                    st.integers(min_value=-(2**63), max_value=2**63), st.sampled_from([0, -0.0, 1e-7, 5e-324, 1e308]))
_odd_values = st.one_of(_values, st.sampled_from([True, None, "7", [1], {"a": 1}, 2**70, float("inf")]))
_metric_names = st.sampled_from(["temp_c", "rh_pct", "p_hpa", "a" * 64, "b", "ba", "a_", "a0", "seq", "Temp",
                                 "x" * 65, "t\u00e9", "a\"b", "a\\b"])
_readings = st.fixed_dictionaries(
    {"seq": st.one_of(_small, st.sampled_from([-1, 2**32, 1.0, True])),
     "m": st.one_of(st.dictionaries(st.sampled_from(["temp_c", "rh_pct", "p_hpa", "a" * 64, "b", "a0"]), _values,
                                    max_size=5),
                    st.dictionaries(_metric_names, _odd_values, max_size=3))},
    optional={"ts": st.one_of(st.integers(min_value=0, max_value=4_102_444_800_000), st.just(4_102_444_800_001)),
              "up": st.integers(min_value=0, max_value=2**42 + 1),
              "s": st.sampled_from(["sht31", "dht20", "soil-1", "a" * 32, "a" * 33, "SHT", "", "s\u00f6", 3]),
              "x": st.just(1)})
_diag = st.dictionaries(
    st.sampled_from(["rssi_dbm", "heap_free", "outbox", "op", "reset", "seq", "Bad", "x" * 65]),
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats(allow_nan=False, allow_infinity=False),
              st.booleans(), st.none(), st.sampled_from(["power", "Viettel", "x" * 64, "x" * 65, "a\tb", "\u00e9",
                                                         "a\"b", "", "~"])),
    max_size=5)
envelopes = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), st.sampled_from([1.0, True, 2])), "dev": st.sampled_from(["dev-1", "dev-1", "dev-2"]),
     "boot": st.one_of(_small, st.sampled_from([-1, 2**32])), "r": st.lists(_readings, max_size=6)},
    optional={"fid": _small, "up": st.integers(min_value=0, max_value=2**42 + 1), "lo": _small,
              "ob": st.integers(min_value=0, max_value=9), "board": st.sampled_from(["esp32", "yolo-uno", "", "Yolo"]),
              "d": _diag, "site": st.just("lab")})


_usual_readings = st.fixed_dictionaries(  # what boards send
    {"seq": _small, "m": st.dictionaries(st.sampled_from(["temp_c", "rh_pct", "p_hpa", "a" * 64, "b", "a0"]), _values,
                                         max_size=5)},
    optional={"s": st.sampled_from(["sht31", "dht20", "soil-1", "a" * 32])})
usual = st.fixed_dictionaries(
    {"v": st.just(1), "dev": st.just("dev-1"), "boot": st.one_of(_small, st.integers(min_value=0, max_value=9)),
     "r": st.one_of(st.lists(_usual_readings.map(lambda r: dict(r, ts=r["seq"] * 7)), max_size=6),
                    st.lists(_usual_readings.map(lambda r: dict(r, up=r["seq"] * 3)), max_size=4))},
    optional={"fid": _small, "up": st.integers(min_value=0, max_value=2**42), "lo": _small,
              "ob": st.integers(min_value=0, max_value=9), "board": st.sampled_from(["esp32", "yolo-uno"]),
              "d": st.dictionaries(st.sampled_from(["rssi_dbm", "heap_free", "op", "reset", "ok"]),
                                   st.one_of(st.integers(min_value=-(2**40), max_value=2**40), st.booleans(),
                                             st.sampled_from(["power", "Viettel", "x" * 64, "", "~"])),
                                   max_size=5)})


@built
@settings(max_examples=1500, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=st.one_of(usual, usual, envelopes), how=st.integers(min_value=0, max_value=99),
       cut=st.integers(min_value=0, max_value=999))
def test_the_c_reads_the_bytes_as_the_old_path_or_declines(doc: dict[str, Any], how: int, cut: int) -> None:
    raw = json.dumps(doc).encode()
    spelled = _respell(raw, how)
    if _same_or_declined(spelled) is not None and spelled != raw:
        _taken["respelled"] += 1
    i = cut % max(len(raw), 1)
    for broken in (raw[:i], raw[:i] + raw[i + 1:], raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:] if raw else raw,
                   raw[:i] + b"\x80" + raw[i:], raw + b"x", raw + raw, raw.replace(b'"r"', b'"d":{},"r"', 1)):
        _same_or_declined(broken)


@built
def test_the_contract_and_firmware_messages_are_read_by_the_c() -> None:
    for path in sorted((CONTRACT / "valid").glob("*.json")):
        payload = path.read_bytes()
        topic = Topic(site="lab", device=json.loads(payload)["dev"], kind="telemetry")
        found = c_message(payload, topic.site, topic.device)  # type: ignore[misc]
        with _pure_python():
            old = decode_telemetry(topic, payload)
        assert found is None or found == old, path
    firmware = (b'{"v":1,"dev":"dev-1","fid":7,"boot":3,"up":61234,"lo":40,"board":"yolo-uno","r":['
                b'{"seq":41,"ts":1796300000123,"s":"sht31","m":{"temp_c":21.53,"rh_pct":55.2}},'
                b'{"seq":42,"ts":1796300000124,"s":"soil-1","m":{"moisture_pct":41}}],"d":{"rssi_dbm":-61,'
                b'"heap_free":41232,"heap_largest":30720,"outbox":2,"dropped":0,"reconnects":0,"uptime_ms":61234}}')
    found = _same_or_declined(firmware)
    assert found is not None and found.needs_anchor  # d and up: its line waits for the anchor
    assert found.lines == (["telemetry,board=yolo-uno,device=dev-1,sensor=sht31,site=lab "
                            "boot=3i,rh_pct=55.2,seq=41i,temp_c=21.53 1796300000123",
                            "telemetry,board=yolo-uno,device=dev-1,sensor=soil-1,site=lab "
                            "boot=3i,moisture_pct=41.0,seq=42i 1796300000124"],
                           1796300000124, {"sht31": 1796300000123, "soil-1": 1796300000124})


_BASE = b'{"v":1,"dev":"dev-1","boot":3,"up":10,"r":[{"seq":1,"ts":1000,"m":{"t":21.5}}]}'


@built
@pytest.mark.parametrize("payload", [
    _BASE.replace(b'"boot":3', b'"boot":3,"boot":4'),  # a key twice: the last wins in JSON readers
    _BASE.replace(b'"t":21.5', b'"t":21.5,"t":2'),
    _BASE.replace(b'"seq":1', b'"seq":1,"seq":1'),
    _BASE.replace(b'"up":10', b'"up":10,"x":1'),  # an unknown key: the old path reads past it
    _BASE.replace(b'"t"', b'"\\u0074"'),  # an escape
    _BASE.replace(b'"dev-1"', b'"dev\\u002d1"'),
    _BASE.replace(b"21.5", b"021.5"), _BASE.replace(b"21.5", b"21."), _BASE.replace(b"21.5", b".5"),
    _BASE.replace(b"21.5", b"1e400"), _BASE.replace(b"21.5", b"NaN"), _BASE.replace(b"21.5", b"1e00001"),
    _BASE.replace(b"21.5", b"123456789012345678901"),  # an integer past 64 bits
    _BASE.replace(b'"seq":1', b'"seq":1.0'),
    _BASE.replace(b'"seq":1', b'"seq":1234567890123456789'),
    _BASE + b"x", _BASE[:-1], b"\xef\xbb\xbf" + _BASE, _BASE.replace(b"}]}", b"}],}"),
    _BASE.replace(b'"ts":1000', b'"ts":1000,"up":5'),  # both: the old path takes ts
    _BASE.replace(b'"up":10,', b"").replace(b'"ts"', b'"up"'),  # up without the envelope's
    _BASE.replace(b'"t":21.5', b'"t":true'), _BASE.replace(b'"t":21.5', b'"t":null'),
    _BASE.replace(b'"r":[', b'"d":{"op":"Vi\xc3\xaat"},"r":['),  # UTF-8 in d
    _BASE.replace(b'"r":[', b'"d":{"op":null},"r":['),
    _BASE.replace(b'"dev-1"', b'"dev-2"'),  # not the topic's device
])
def test_what_the_c_leaves_to_the_old_path(payload: bytes) -> None:
    assert c_message is not None
    assert c_message(payload, TOPIC.site, TOPIC.device) is None
    decode_telemetry(TOPIC, payload)  # and the old path takes it or says why, without raising


@built
@pytest.mark.parametrize(("spelled", "value"), [
    (b"2.15e1", 21.5), (b"215E-1", 21.5), (b"21.50", 21.5), (b"-0", 0.0), (b"-0.0", -0.0), (b"1e-400", 0.0),
    (b"0.1", 0.1), (b"9007199254740993", 9007199254740992.0), (b"1.7976931348623157e308", 1.7976931348623157e308),
    (b"2.2250738585072011e-308", 2.2250738585072011e-308), (b"123456789.123456789", 123456789.12345679),
])
def test_numbers_are_read_as_orjson_reads_them(spelled: bytes, value: float) -> None:
    found = _same_or_declined(_BASE.replace(b"21.5", spelled))
    assert found is not None
    number = found.readings[0].metrics["t"]
    assert number == value and str(number) == str(value)


@built
def test_site_and_device_come_from_the_topic_and_must_be_names() -> None:
    assert c_message is not None
    assert c_message(_BASE, "la b", "dev-1") is None and c_message(_BASE, "lab", "dev-1") is not None
    assert c_message(bytearray(_BASE), "lab", "dev-1") is None  # bytes only
    with pytest.raises(TypeError):
        c_message(_BASE, "lab")  # type: ignore[call-arg]


@built
def test_nothing_keeps_a_reference_or_memory_it_should_not() -> None:
    assert c_message is not None
    site, device = "lab", "dev-1"
    declined = _BASE.replace(b'"t":21.5', b'"t":21.5,"t":2')
    with_d = _BASE.replace(b'"r":[', b'"d":{"op":"VN","ok":true,"n":3},"r":[')
    uptime = _BASE.replace(b'"ts"', b'"up"')
    watched = [site, device, _BASE, declined, with_d, uptime, decode.DEFAULT_BOARD]
    for _ in range(3):  # warm: the name cache
        c_message(with_d, site, device)
    before = [sys.getrefcount(item) for item in watched]
    tracemalloc.start()
    try:
        first = tracemalloc.get_traced_memory()[0]
        taken = 0
        for _ in range(5000):  # no assert in the loop: pytest's keeps what it compared
            taken += sum(c_message(p, site, device) is not None for p in (_BASE, with_d, uptime, declined))
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert taken == 15_000 and [sys.getrefcount(item) for item in watched] == before
    assert grown < 16_384, grown  # 20,000 calls: nothing kept per call


@built
def test_the_comparisons_saw_the_c_take_every_kind_of_message() -> None:
    """Runs after the comparisons above (file order)."""
    assert _taken["mine"] > 800 and _taken["with_d"] > 150 and _taken["uptime"] > 50, _taken
    assert _taken["respelled"] > 150, _taken


def test_the_message_reader_is_built_with_the_rest() -> None:
    assert (compiled_pass is None) == (c_message is None)
