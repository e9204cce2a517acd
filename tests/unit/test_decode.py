"""Decoding and validation of v1 payloads, pinned to tests/contract/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.service import decode
from gateway.service.decode import MAX_MESSAGE_BYTES, Reason, Reject, Telemetry, decode_telemetry
from gateway.errors import TopicError
from gateway.service.status_msg import decode_status
from gateway.service.topics import Topic, parse_topic

CONTRACT = Path(__file__).resolve().parents[1] / "contract"
REASONS: dict[str, str] = json.loads((CONTRACT / "invalid" / "reasons.json").read_text())
VALID = sorted((CONTRACT / "valid").glob("*.json"))


def _topic(payload: bytes, *, site: str = "home") -> Topic:
    """The topic the device named in ``payload`` would publish on (or a valid stand-in)."""
    try:
        dev = json.loads(payload)["dev"]
    except (ValueError, KeyError, TypeError):
        dev = "sim-0001"
    device = dev if isinstance(dev, str) and dev.islower() and " " not in dev else "sim-0001"
    return Topic(site=site, device=device, kind="telemetry")


def _msg(**overrides: object) -> bytes:
    doc: dict[str, object] = {"v": 1, "dev": "sim-0001", "boot": 1, "up": 1000,
                              "r": [{"seq": 1, "ts": 1763800000000, "m": {"temp_c": 1.0}}]}
    doc.update(overrides)
    return json.dumps(doc).encode()


def _reason(payload: bytes, device: str = "sim-0001") -> str:
    result = decode_telemetry(Topic(site="home", device=device, kind="telemetry"), payload)
    assert isinstance(result, Reject), result
    return str(result.reason)


def test_contract_lists_every_invalid_file() -> None:
    files = {p.name for p in (CONTRACT / "invalid").glob("*.json")} - {"reasons.json"}
    assert files == set(REASONS)


@pytest.mark.parametrize("name", sorted(REASONS))
def test_invalid_contract_payload_gets_its_reason(name: str) -> None:
    payload = (CONTRACT / "invalid" / name).read_bytes()
    result = decode_telemetry(_topic(payload), payload)
    assert isinstance(result, Reject), result
    assert result.reason == REASONS[name], result.detail


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_contract_payload_decodes(path: Path) -> None:
    payload = path.read_bytes()
    doc = json.loads(payload)
    result = decode_telemetry(_topic(payload), payload)
    assert isinstance(result, Telemetry), result
    assert result.device == doc["dev"] and result.boot == doc["boot"]
    assert [r.seq for r in result.readings] == [r["seq"] for r in doc["r"]]
    for reading, raw in zip(result.readings, doc["r"], strict=True):
        assert dict(reading.metrics) == raw["m"]
        assert reading.ts_ms == raw.get("ts")
        assert reading.up_ms == (None if "ts" in raw else raw["up"])
    assert result.board == doc.get("board", "unknown")


def test_diagnostics_keep_numbers_as_floats_and_strings() -> None:
    payload = (CONTRACT / "valid" / "basic_ts.json").read_bytes()
    result = decode_telemetry(_topic(payload), payload)
    assert isinstance(result, Telemetry)
    assert result.diag == {"rssi_dbm": -61.0, "heap_free": 41232.0, "outbox": 2.0,
                           "dropped": 0.0, "reset": "power"}
    assert all(isinstance(v, float) for k, v in result.diag.items() if k != "reset")


def test_uptime_only_needs_an_anchor() -> None:
    payload = (CONTRACT / "valid" / "uptime_only.json").read_bytes()
    result = decode_telemetry(_topic(payload), payload)
    assert isinstance(result, Telemetry) and result.needs_anchor and result.up_ms == 60000


@pytest.mark.parametrize("name", [
    "temp c", "temp,c", "temp=c", "temp\nc", 'temp"c', "temp\\c", "Temp_c", "1temp", "", "x" * 65,
    "temp_c\n", "tëmp", "seq", "boot", "time",
])
def test_metric_names_that_could_inject_line_protocol_are_refused(name: str) -> None:
    assert _reason(_msg(r=[{"seq": 1, "ts": 1763800000000, "m": {name: 1.0}}])) == "bad_name"


@pytest.mark.parametrize("dev", ["sim 0001", "sim,0001", "sim=1", "sim\n1", 'sim"1', "SIM", "", "a" * 33])
def test_device_names_that_could_inject_line_protocol_are_refused(dev: str) -> None:
    assert _reason(_msg(dev=dev)) == "bad_name"


@pytest.mark.parametrize("board", ["esp 32", "esp,32", "esp=32", "esp\n32", 'esp"32', ""])
def test_board_names_are_checked(board: str) -> None:
    assert _reason(_msg(board=board)) == "bad_name"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    payload = ('{"v":1,"dev":"sim-0001","boot":1,"up":1,"r":[{"seq":1,"ts":1763800000000,'
               '"m":{"temp_c":' + value + '}}]}').encode()
    assert _reason(payload) == "non_finite"


def test_oversize_message_is_refused() -> None:
    payload = _msg(pad="x" * MAX_MESSAGE_BYTES)
    assert _reason(payload) == "oversize"
    filler = "x" * (MAX_MESSAGE_BYTES - len(_msg(pad="")))
    assert len(_msg(pad=filler)) == MAX_MESSAGE_BYTES
    assert isinstance(decode_telemetry(_topic(b""), _msg(pad=filler)), Telemetry)


def test_device_must_match_topic() -> None:
    assert _reason(_msg(dev="sim-0002"), device="sim-0001") == "topic_mismatch"


@pytest.mark.parametrize(("payload", "reason"), [
    (b"\xff\xfe", "not_json"),
    (b"[1, 2]", "bad_type"),
    (b"[" * 3000, "not_json"),
    (_msg(v="1"), "schema_version"),
    (_msg(v=True), "schema_version"),
    (_msg(boot="1"), "bad_type"),
    (_msg(boot=-1), "out_of_range"),
    (_msg(boot=2**63), "out_of_range"),
    (_msg(r={"seq": 1}), "bad_type"),
    (_msg(r=[1]), "bad_type"),
    (_msg(r=[{"ts": 1763800000000, "m": {"t": 1.0}}]), "missing_key"),
    (_msg(r=[{"seq": 1, "ts": 1763800000000}]), "missing_key"),
    (_msg(r=[{"seq": 1.5, "ts": 1763800000000, "m": {}}]), "bad_type"),
    (_msg(r=[{"seq": 1, "ts": 1.5e12, "m": {}}]), "bad_type"),
    (_msg(r=[{"seq": 1, "ts": 1763800000000, "m": {"t": True}}]), "bad_type"),
    (_msg(r=[{"seq": 1, "ts": 1763800000000, "m": {"t": None}}]), "bad_type"),
    (_msg(r=[{"seq": 1, "ts": 1763800000000, "m": []}]), "bad_type"),
    (_msg(d={"reset": "a\nb"}), "bad_type"),
    (_msg(d={"bad key": 1}), "bad_name"),
    (_msg(dev=1), "bad_type"),
])
def test_other_bad_messages(payload: bytes, reason: str) -> None:
    assert _reason(payload) == reason


def test_uptime_reading_without_envelope_uptime_is_refused() -> None:
    doc = {"v": 1, "dev": "sim-0001", "boot": 1, "r": [{"seq": 1, "up": 5, "m": {"t": 1.0}}]}
    assert _reason(json.dumps(doc).encode()) == "missing_key"


def test_unknown_keys_are_ignored_and_ints_become_floats() -> None:
    result = decode_telemetry(_topic(b""), _msg(extra=[1], r=[{"seq": 1, "ts": 5, "m": {"t": 2}, "x": 0}]))
    assert isinstance(result, Telemetry)
    assert result.readings[0].metrics == {"t": 2.0} and isinstance(result.readings[0].metrics["t"], float)


def test_status_messages() -> None:
    topic = Topic(site="home", device="sim-0001", kind="status")
    ok = decode_status(topic, b'{"state": "sleeping", "until": 1763800000000}')
    assert not isinstance(ok, Reject) and ok.state == "sleeping" and ok.until_ms == 1763800000000
    bad = decode_status(topic, b'{"state": "dancing"}')
    assert isinstance(bad, Reject) and bad.reason == Reason.BAD_TYPE


def test_topics() -> None:
    assert parse_topic("sen/v1/home/sim-0001/telemetry") == Topic(site="home", device="sim-0001",
                                                                   kind="telemetry")
    for bad in ("sen/v1/home/telemetry", "sen/v2/home/d/telemetry", "sen/v1/home/d/other"):
        with pytest.raises(TopicError) as info:
            parse_topic(bad)
        assert not info.value.bad_name
    with pytest.raises(TopicError) as info:
        parse_topic("sen/v1/Home Site/d/telemetry")
    assert info.value.bad_name


_R = '{"seq":1,"ts":1763800000000,"m":{"temp_c":1.5}}'


@pytest.mark.parametrize("payload", [
    f'{{"v":1,"dev":"sim-0001","boot":1,"r":[{_R}]}}',
    f'{{"v":1,"dev":"sim-0001","boot":18446744073709551616,"r":[{_R}]}}',  # orjson: a float
    '{"v":1,"dev":"sim-0001","boot":1,"r":[{"seq":-9223372036854775809,"ts":1,"m":{}}]}',
    '{"v":1,"dev":"sim-0001","boot":1,"r":[{"seq":1,"ts":1,"m":{"t":18446744073709551616}}]}',
    '{"v":1,"dev":"sim-0001","boot":1,"r":[{"seq":1,"ts":1,"m":{"t":NaN}}]}',  # orjson refuses NaN
    '{"v":1,"dev":"sim-0001","boot":1,"r":[{"seq":1,"ts":1,"m":{"t":1e400}}]}',
    '{"v":1,"dev":"sim-\\ud800","boot":1,"r":[]}',  # a lone surrogate
    '\ufeff{"v":1,"dev":"sim-0001","boot":1,"r":[]}',  # a byte order mark
    f'{{"v":1,"dev":"sim-0001","boot":1,"boot":2,"r":[{_R}]}}',  # the last of two keys counts
    f' {{"v":1,"dev":"sim-0001","boot":1,"r":[{_R}]}} ', f'[{_R}]', '{"v":1', '"x"',
])
def test_orjson_and_json_decode_alike(payload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same result, reason and detail whether orjson reads a message first or json alone."""
    topic = Topic(site="home", device="sim-0001", kind="telemetry")
    with_orjson = decode_telemetry(topic, payload.encode())
    monkeypatch.setattr(decode, "_fast_loads", None)
    assert decode_telemetry(topic, payload.encode()) == with_orjson
