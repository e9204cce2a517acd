"""A clock jump on the real MicroPython VM: the simulator's `clock_offset_ms` in faults.json
(hardware/vboard.py: VirtualBoard.clock_jump) shifts the sim HAL's epoch clock, so the
readings' `ts` jump with it; forward jumps show as they are, and `ts` never goes back (two
readings never share a point in InfluxDB)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fw_board import Board, board_config

pytestmark = pytest.mark.firmware
JUMP_MS = 3_600_000


def _readings(out: str) -> list[dict[str, int]]:
    rs = []
    for ln in out.splitlines():
        if ln.startswith("SEN1 ") and '"kind"' not in ln:
            rs += json.loads(ln[5:ln.rfind(" ")])["r"]
    return rs


@pytest.mark.parametrize("jump", [JUMP_MS, -JUMP_MS])
def test_clock_jump_shifts_ts(jump: int, micropython_bin: str, repo_root: Path,
                              tmp_path: Path) -> None:
    b = Board(micropython_bin, repo_root, tmp_path)
    b.write_config(board_config("127.0.0.1", 1, "clk-01", transport="serial", ack="puback",
                                max_readings=40, interval_ms=30, batch_max=2))
    t0 = time.time() * 1000
    try:
        b.start()
        b.wait_line(r"tx boot 1 seq \.\.10 ", 20)
        (tmp_path / "faults.json").write_text(json.dumps({"clock_offset_ms": jump}))
        assert b.wait_exit(30) == 0, b.output()
    finally:
        b.kill()
    t1 = time.time() * 1000
    rs = _readings(b.output())
    assert [r["seq"] for r in rs] == list(range(1, 41))
    ts = [r["ts"] for r in rs]
    assert all(t0 - 1000 <= t <= t1 + 1000 for t in ts[:10]), ts[:10]
    assert all(b2 > a for a, b2 in zip(ts, ts[1:])), ts  # strictly increasing, always
    if jump > 0:
        assert t0 + jump - 1000 <= ts[-1] <= t1 + jump + 1000, (ts[-1], t0)
        assert sum(1 for a, b2 in zip(ts, ts[1:]) if b2 - a > jump // 2) == 1
    else:  # the clock went back an hour: ts hold at the last one + 1 ms each
        assert [b2 - a for a, b2 in zip(ts[-10:], ts[-9:])] == [1] * 9, ts[9:]
    assert "sim: faults {'clock_offset_ms': %d}" % jump in b.output()
