"""SEN1 framing: the golden lines of tests/contract/serial/frames.json, and a fuzz of 100,000+ lines."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.service.serial_frame import MAX_LINE, Outcome, ack_frame, crc_hex, encode, parse_line

FRAMES = json.loads((Path(__file__).parent.parent / "contract" / "serial" / "frames.json").read_text())
GOOD = FRAMES["valid"]["device_to_gateway"][0]["line"].encode()


def test_golden_valid_lines() -> None:
    for group in ("device_to_gateway", "gateway_to_device"):
        for case in FRAMES["valid"][group]:
            parsed = parse_line(case["line"].encode() + b"\n")
            assert parsed.outcome == case["kind"], case
            assert parsed.outcome.is_frame


def test_golden_invalid_lines() -> None:
    for case in FRAMES["invalid"]:
        assert parse_line(case["line"].encode()).outcome == case["outcome"], case


def test_topic_from_site_and_dev() -> None:
    telemetry = parse_line(GOOD)
    assert str(telemetry.topic()) == "sen/v1/lab/yolo-uno-01/telemetry"
    status = parse_line(FRAMES["valid"]["device_to_gateway"][1]["line"].encode())
    assert str(status.topic()) == "sen/v1/lab/yolo-uno-01/status"
    assert parse_line(FRAMES["valid"]["gateway_to_device"][0]["line"].encode()).topic() is None


def test_ack_frame_matches_the_golden_ack() -> None:
    golden = FRAMES["valid"]["gateway_to_device"][0]["line"].encode() + b"\n"
    assert ack_frame({"boot": 3, "seq": 1, "anchor": 1763799940123}) == golden


def test_upper_case_crc_and_crlf_accepted() -> None:
    payload, crc = GOOD[5:].rsplit(b" ", 1)
    assert parse_line(b"SEN1 " + payload + b" " + crc.upper() + b"\r\n").outcome == Outcome.TELEMETRY


def test_good_crc_but_bad_inside_is_a_bad_frame() -> None:
    for payload in (b"{not json}", b'{"kind":"reboot-me"}'):
        line = b"SEN1 " + payload + b" " + crc_hex(payload).encode()
        assert parse_line(line).outcome == Outcome.BAD_FRAME
    assert parse_line(b"SEN1 " + b"{" * MAX_LINE + b"} 00000000").outcome == Outcome.BAD_FRAME


def test_encode_round_trips() -> None:
    message = {"v": 1, "site": "s", "dev": "d", "r": [{"seq": 1, "up": 5, "m": {"t": 1.5}}]}
    parsed = parse_line(encode(message))
    assert parsed.outcome == Outcome.TELEMETRY and parsed.message == message


_COUNTED = {Outcome.NOISE, Outcome.BAD_FRAME, Outcome.BAD_CRC}


_checked = [0]


def _check(line: bytes) -> None:
    _checked[0] += 1
    parsed = parse_line(line)  # must not raise
    assert parsed.outcome.is_frame or parsed.outcome in _COUNTED
    if parsed.outcome.is_frame:
        assert isinstance(parsed.message, dict)


# At least 100,000 lines in all: generating a line costs far more than checking it, so each
# generated line is checked in several framings (3,000 x >=8 x 4 random, 1,500 x >=4 x 6 mangled).
@settings(max_examples=3_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=200), min_size=8, max_size=12))
def test_fuzz_random_bytes(lines: list[bytes]) -> None:
    for line in lines:
        _check(line)
        _check(b"SEN1 " + line)
        _check(b"SEN1 " + line + b" " + crc_hex(line).encode())  # a good CRC: the inside is parsed
        _check(b"SEN1 {" + line + b"} " + crc_hex(b"{" + line + b"}").encode())


_pieces = st.sampled_from([b"SEN1 ", b"{", b"}", b" ", b'"kind":', b'"ack"', b"\xff", b"0" * 8,
                           GOOD[5:-9], GOOD[-8:], b"[", b",", b"\r", b"1e999", b'"site":"lab"'])
_mangle = st.tuples(st.lists(_pieces, max_size=12), st.integers(0, len(GOOD)), st.binary(max_size=3))


@settings(max_examples=1_500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_mangle, min_size=4, max_size=6))
def test_fuzz_mangled_frames(cases: list[tuple[list[bytes], int, bytes]]) -> None:
    for pieces, cut, splice in cases:
        framed = b"".join(pieces)
        spliced = GOOD[:cut] + splice + GOOD[cut + len(splice):]
        _check(framed)
        _check(spliced)
        _check(GOOD[:cut])
        _check(b"SEN1 " + framed + b" " + crc_hex(framed).encode())
        inner = spliced[5:-9]  # the spliced frame's inside, with its CRC made right again
        _check(b"SEN1 " + inner + b" " + crc_hex(inner).encode())
        _check(b"SEN1 " + inner + b" " + crc_hex(inner).upper().encode() + b"\r")


def test_the_fuzz_checked_enough_lines() -> None:
    """Runs after the two fuzz tests (file order)."""
    assert _checked[0] >= 100_000, _checked


def test_an_ota_frame_echoed_back_is_a_frame_for_a_board_not_a_bad_one() -> None:
    from gateway.service.serial_bridge import ota_frame

    line = ota_frame(b"SOTA\x1a\x2b\x3c\x4d\x00\x00\x00\x00chunk")
    parsed = parse_line(line.rstrip(b"\n"))
    assert parsed.outcome == Outcome.OTA and parsed.outcome.is_frame
    assert base64.b64decode(parsed.message["b64"]) == b"SOTA\x1a\x2b\x3c\x4d\x00\x00\x00\x00chunk"
