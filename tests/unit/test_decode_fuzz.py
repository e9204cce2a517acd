"""Fuzz the decoder: >= 100,000 generated inputs, no exception escapes, each accepted or refused.

Each hypothesis example is 5 generated inputs (structured envelopes with mutations, and raw
bytes), each checked as is and in 9 cheap byte-level mutations (cut by one, in half and to a
third, two flipped bytes, a byte left out, leading space, trailing junk, doubled): 50 inputs per
example, so 2,000 derandomized examples drive 100,000 inputs (generating an input costs far more
than checking one).
An accepted message must also encode to line protocol (nothing can inject a line).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.service.decode import Reject, Telemetry, decode_telemetry
from gateway.service.readings import RESERVED_FIELDS
from gateway.service.status_msg import decode_status
from gateway.service.points import to_entries
from gateway.service.topics import NAME_RE, Topic

PER_EXAMPLE = 50
EXAMPLES = 2000
TOPIC = Topic(site="lab", device="dev-1", kind="telemetry")
_seen = {"inputs": 0, "accepted": 0, "refused": 0}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["dev-1", "temp_c", "a,b=c d", "x\ny", "", "DEV", "ü"]),
)
names = st.one_of(st.sampled_from(["temp_c", "rh_pct", "seq", "boot", "Temp", "a b", "t\n", "_x", "",
                                   "device", "sensor", "site"]),
                  st.text(max_size=10))
sensors = st.one_of(st.sampled_from(["sht31", "dht20", "sht31_45", "SHT 31!", "", "x" * 33, 'a",b=c d', "t\n"]),
                    scalars)
reading = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=-2, max_value=2**64), scalars)},
    optional={"ts": st.one_of(st.integers(min_value=-1, max_value=5_000_000_000_000), scalars),
              "up": st.one_of(st.integers(min_value=-1, max_value=2**63), scalars),
              "s": sensors,
              "m": st.one_of(st.dictionaries(names, st.one_of(st.floats(), scalars), max_size=4), scalars)})
envelope = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), scalars), "dev": st.one_of(st.just("dev-1"), scalars),
     "boot": st.one_of(st.integers(min_value=-1, max_value=2**64), scalars)},
    optional={"up": st.one_of(st.integers(min_value=0, max_value=2**40), scalars),
              "board": st.one_of(st.just("esp32"), names),
              "r": st.one_of(st.lists(st.one_of(reading, scalars), max_size=4), scalars),
              "d": st.one_of(st.dictionaries(names, scalars, max_size=3), scalars),
              "fid": st.one_of(st.integers(min_value=-1, max_value=2**33), scalars),
              "zz": scalars})

good_reading = st.fixed_dictionaries(
    {"seq": st.integers(min_value=0, max_value=2**40),
     "ts": st.integers(min_value=0, max_value=4_000_000_000_000),
     "m": st.dictionaries(st.sampled_from(["temp_c", "rh_pct", "p_hpa"]),
                          st.floats(allow_nan=True, allow_infinity=False, width=32), max_size=3)},
    optional={"s": st.sampled_from(["sht31", "dht20", "soil", "bme280_77"])})
good = st.fixed_dictionaries(
    {"v": st.just(1), "dev": st.just("dev-1"), "boot": st.integers(min_value=0, max_value=2**31),
     "up": st.integers(min_value=0, max_value=2**31), "r": st.lists(good_reading, max_size=3)},
    optional={"d": st.dictionaries(st.sampled_from(["rssi_dbm", "reset", "Bad"]),
                                   st.one_of(st.integers(-100, 0), st.just("power")), max_size=2),
              "fid": st.integers(min_value=0, max_value=2**32 - 1)})


def _encode(doc: Any, cut: int, flip: int) -> bytes:
    try:
        raw = json.dumps(doc, allow_nan=True).encode()
    except (ValueError, OverflowError):
        raw = b"{"
    if cut:  # truncate or corrupt a byte: half messages, bit errors
        raw = raw[:len(raw) - cut] if cut > 0 else raw
    if flip and raw:
        i = flip % len(raw)
        raw = raw[:i] + bytes([raw[i] ^ 0x20]) + raw[i + 1:]
    return raw


one_input = st.one_of(
    st.builds(_encode, good, st.just(0), st.sampled_from([0, 0, 0, 7, 31])),
    st.builds(_encode, envelope, st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=400)),
    st.binary(max_size=64),
    st.builds(lambda n: b'{"v":1,"dev":"dev-1","boot":1,"r":[' + b"[" * n, st.integers(1, 3000)),
    st.builds(lambda n: b"x" * n, st.sampled_from([4096, 4097, 10000])),
)


def _check(payload: bytes) -> None:
    decoded = decode_telemetry(TOPIC, payload)
    status = decode_status(Topic(site="lab", device="dev-1", kind="status"), payload)
    assert isinstance(status, Reject) or status.state in ("online", "sleeping", "offline")
    _seen["inputs"] += 1
    if isinstance(decoded, Reject):
        _seen["refused"] += 1
        assert decoded.detail
        return
    assert isinstance(decoded, Telemetry)
    _seen["accepted"] += 1
    for entry in to_entries(decoded, anchor_ms=1_000, received_ms=2_000):
        assert "\n" not in entry.line and entry.line.startswith(("telemetry,", "device_diag,"))
        assert entry.key.startswith((f"r/lab/dev-1/{decoded.fid}/{decoded.boot}/", "d/lab/dev-1/"))
    for r in decoded.readings:
        assert all(math.isfinite(v) for v in r.metrics.values())
        assert r.sensor is None or NAME_RE.fullmatch(r.sensor)  # a tag value that cannot inject
        assert not RESERVED_FIELDS & set(r.metrics)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(one_input, min_size=PER_EXAMPLE // 10, max_size=PER_EXAMPLE // 10))
def test_decoder_never_raises_and_accepts_or_refuses(payloads: list[bytes]) -> None:
    for raw in payloads:
        i, j = (len(raw) * 7) // 11, (len(raw) * 3) // 11
        flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:] if raw else b"\x00"
        flipped2 = raw[:j] + bytes([raw[j] ^ 0x22]) + raw[j + 1:] if raw else b"\x22"
        for payload in (raw, raw[:-1], raw[:len(raw) // 2], raw[:len(raw) // 3], flipped, flipped2,
                        raw[:i] + raw[i + 1:], b" " + raw, raw + b"}", raw + raw):
            _check(payload)


def test_the_fuzz_drove_enough_inputs() -> None:
    """Runs after the fuzz (file order): at least 100,000 inputs, both outcomes seen."""
    assert _seen["inputs"] >= 100_000, _seen
    assert _seen["accepted"] > 0 and _seen["refused"] > 0, _seen
