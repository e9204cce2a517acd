"""The same checks for a real board (--board-port) and a simulated one (--sim-board / SEN_HIL=sim)."""

from __future__ import annotations

from itertools import pairwise

import time


from gateway.service.serial_frame import Outcome, Parsed, ack_frame, parse_line
from tests.hil.conftest import INTERVAL_MS, Board

RANGES = {"temp_c": (-40.0, 85.0), "rh_pct": (0.0, 100.0), "p_hpa": (300.0, 1100.0)}


def _lines(board: Board, seconds: float) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = board.port.readline()
        if line:
            out.append(line)
    return out


def _frames(board: Board, seconds: float, *, ack: bool) -> list[Parsed]:
    """Telemetry frames read for SECONDS. With ACK, a gateway that stores them and acks up to the
    highest seq below which nothing is missing; without, a gateway that is away (frames lost)."""
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        parsed = parse_line(board.port.readline())
        if parsed.outcome != Outcome.TELEMETRY:
            continue
        frames.append(parsed)
        if ack:
            boot = parsed.message["boot"]
            seen = board.seen.setdefault(boot, set())
            seen.update(r["seq"] for r in parsed.message["r"])
            contiguous = min(seen) - 1
            while contiguous + 1 in seen:
                contiguous += 1
            board.port.write(ack_frame({"boot": boot, "seq": contiguous, "anchor": 0}))
    return frames


def test_boot_banner(board: Board) -> None:
    board.reset()
    text = b"".join(_lines(board, 4)).decode(errors="replace")
    assert "Sen firmware" in text, text[-2000:]


def test_readings_in_physical_ranges_at_the_configured_cadence(board: Board) -> None:
    frames = _frames(board, 4, ack=True)
    readings = [r for f in frames for r in f.message["r"]]
    assert len(readings) >= 5, f"only {len(readings)} readings in 4 s"
    for reading in readings:
        for metric, value in reading["m"].items():
            lo, hi = RANGES.get(metric, (float("-inf"), float("inf")))
            assert lo <= value <= hi, (metric, value)
    stamps = sorted(r["ts"] for r in readings if "p_hpa" in r["m"] and "ts" in r)  # one sensor
    gaps = [b - a for a, b in pairwise(stamps)]
    assert gaps and all(gap >= INTERVAL_MS * 0.5 for gap in gaps), gaps
    assert sum(gaps) / len(gaps) <= INTERVAL_MS * 5, gaps


def test_outbox_replayed_after_a_gateway_outage(board: Board) -> None:
    _frames(board, 1, ack=True)               # in step with the "gateway"
    unacked = _frames(board, 2.5, ack=False)  # gateway away: no acks
    sent = {r["seq"] for f in unacked for r in f.message["r"]}
    assert sent, "no frames while the gateway was away"
    _frames(board, 4, ack=True)               # gateway back: the board sends its outbox again
    boot = unacked[-1].message["boot"]
    seen = board.seen.get(boot, set())
    missing = sorted(set(range(min(seen), max(sent) + 1)) - seen)
    assert not missing, f"readings sent during the outage never arrived afterwards: {missing}"
