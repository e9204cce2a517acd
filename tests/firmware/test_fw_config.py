"""config.json is checked at boot: a bad one stops the board with exit code 2 and one line
naming the key."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, board_config

pytestmark = pytest.mark.firmware


def _broken(**over: Any) -> dict[str, Any]:
    return board_config("127.0.0.1", 1, "fw-cfg", **over)


CASES = [
    (_broken(site="Lab!"), "site"),
    (_broken(device_id="x" * 33), "device_id"),
    (_broken(board=""), "board"),
    (_broken(broker={"host": "127.0.0.1", "port": "1883"}), "broker.port"),
    (_broken(broker={"port": 1883}), "broker.host"),
    (_broken(broker={"host": "h", "keepalive": True}), "broker.keepalive"),
    (_broken(interval_ms=0), "interval_ms"),
    (_broken(batch_max=500), "batch_max"),
    (_broken(max_readings=-1), "max_readings"),
    (_broken(sim={"seed": 1.5}), "sim.seed"),
    ({k: v for k, v in _broken().items() if k != "broker"}, "broker"),
    # TLS verifies the broker against broker.ca, or says "insecure" in so many words
    (_broken(broker={"host": "h", "tls": True}), "broker.ca"),
    (_broken(broker={"host": "h", "tls": "yes", "ca": "ca.der"}), "broker.tls"),
    (_broken(broker={"host": "h", "tls": 1, "ca": "ca.der"}), "broker.tls"),
    (_broken(broker={"host": "h", "tls": "insecure", "ca": "ca.der"}), "broker.ca"),
    (_broken(broker={"host": "h", "ca": "ca.der"}), "broker.ca"),
    (_broken(sensors=[{"type": "sht31", "addr": 68, "name": "SHT 31!"}]), "sensors[0].name"),
    (_broken(sensors=[{"type": "sht31", "addr": 68}, {"type": "dht20", "addr": 56, "name": "x" * 33}]),
     "sensors[1].name"),
    (_broken(sensors=[{"type": "sht31", "addr": 68, "name": "air"}, {"type": "sht31", "addr": 69, "name": "air"}]),
     "sensors[1].name"),
]


@pytest.mark.parametrize(("cfg", "key"), CASES, ids=[f"{k}-{i}" for i, (_, k) in enumerate(CASES)])
def test_bad_key_is_named(cfg: dict[str, Any], key: str, micropython_bin: str,
                          repo_root: Path, tmp_path: Path) -> None:
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(cfg)
    assert board.run(timeout=20) == 2
    lines = [ln for ln in board.output().splitlines() if "config error" in ln]
    assert len(lines) == 1, board.output()
    assert f"key '{key}'" in lines[0] and "config.json" in lines[0]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_unreadable_config(text: str, micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(text)
    assert board.run(timeout=20) == 2
    assert "config error: config.json" in board.output()


def test_missing_config(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    board = Board(micropython_bin, repo_root, tmp_path)
    assert board.run(timeout=20) == 2
    assert "config error: config.json" in board.output()


def test_sample_config_is_valid(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    # The sample is the single source of the documented keys: it must pass the checks.
    sample = (repo_root / "firmware" / "config.sample.json").read_text()
    (tmp_path / "config.json").write_text(sample)
    code = ("import sys; sys.path.insert(2, %r); import config; c = config.load(); "
            "print('OK', c['site'], c['port'], c['max_readings'])" % str(repo_root / "firmware" / "lib"))
    done = subprocess.run([micropython_bin, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK lab 1883 0")
