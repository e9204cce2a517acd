"""The firmware on the real MicroPython VM against a real Mosquitto: readings arrive as
payload-v1 envelopes, the board survives a broker that is not there yet or a link that goes
silent, boot increments."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, Collector, board_config, check_envelope, shape, wait_for
from fw_net import Proxy

pytestmark = pytest.mark.firmware

SITE = "fwtest"
CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "valid"


def _status(mosquitto: Any, device: str) -> dict[str, Any]:
    """The retained status, as a new subscriber sees it."""
    c = Collector(mosquitto.host, mosquitto.port)
    try:
        topic = f"sen/v1/{SITE}/{device}/status"
        wait_for(lambda: bool(c.on(topic)), 5, "retained status")
        payload, retained = c.on(topic)[0]
        assert retained
        return json.loads(payload)
    finally:
        c.close()


def test_twenty_readings_in_128k(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                tmp_path: Path) -> None:
    dev = "fw-run"
    col = Collector(mosquitto.host, mosquitto.port)
    board = Board(micropython_bin, repo_root, tmp_path, heap="128K")
    board.write_config(board_config(mosquitto.host, mosquitto.port, dev))
    try:
        assert board.run(timeout=60) == 0, board.output()
        out = board.output()
        assert re.search(r"^Sen firmware \S+ device=fw-run boot=1 board=sim", out, re.M), out
        assert re.search(r"^Sen done: 20 readings acked .* dropped 0", out, re.M), out
        topic = f"sen/v1/{SITE}/{dev}/telemetry"
        # every envelope was PUBACKed before the board exited, so the broker has sent them on
        wait_for(lambda: len(col.seqs(SITE, dev)) >= 20, 10, "20 readings")
        now = int(time.time() * 1000)
        envs = [check_envelope(p, dev, "sim", now) for p, _ in col.on(topic)]
        assert sorted(col.seqs(SITE, dev)) == list(range(1, 21))
        assert {e["boot"] for e in envs} == {1}
        assert all(len(e["r"]) <= 10 for e in envs)
        assert all({"temp_c", "rh_pct"} <= set(r["m"]) for e in envs for r in e["r"])
        # the default simulated board's three sensors, by their drivers' names
        assert {r["s"] for e in envs for r in e["r"]} == {"bme280", "sht31", "dht20"}
        assert all(("p_hpa" in r["m"]) == (r["s"] == "bme280") for e in envs for r in e["r"])
    finally:
        board.kill()
        col.close()
    st = _status(mosquitto, dev)
    assert st == {"state": "online", "ver": "0", "boot": 1, "board": "sim"}  # ver: no OTA yet


def test_envelope_has_the_golden_shape(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                       tmp_path: Path) -> None:
    dev = "fw-shape"
    col = Collector(mosquitto.host, mosquitto.port)
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(board_config(mosquitto.host, mosquitto.port, dev, max_readings=3))
    try:
        assert board.run(timeout=60) == 0, board.output()
        wait_for(lambda: len(col.seqs(SITE, dev)) >= 3, 10, "3 readings")
        env = col.envelopes(SITE, dev)[0]
    finally:
        board.kill()
        col.close()
    # the golden envelope with the flash id "fid", "lo" and each reading's sensor "s", as this
    # firmware sends it
    golden = json.loads((CONTRACT / "sensor_and_fid.json").read_text())
    mine, gold = shape(env), shape(golden)
    assert set(mine) == set(gold)
    assert set(mine["r"][0]) == set(gold["r"][0])
    assert {k: v for k, v in mine.items() if k not in ("r", "d")} == \
        {k: v for k, v in gold.items() if k not in ("r", "d")}
    # "lo" (tests/contract/ack.md): the oldest seq of this boot still in the outbox
    assert type(env["lo"]) is int and 1 <= env["lo"] <= env["r"][0]["seq"]
    # "fid": the flash id this board drew on its first boot and keeps beside its boot counter
    assert env["fid"] == int((tmp_path / "sen_fid.txt").read_text()) and 0 < env["fid"] < 1 << 32
    # the golden keys the board can know (no radio on the sim: rssi is the sim's), plus ours
    assert {"heap_free", "outbox", "dropped", "reset", "heap_largest", "reconnects",
            "uptime_ms", "rssi_dbm"} <= set(mine["d"])
    assert set(gold["r"][0]["m"]) <= set(mine["r"][0]["m"])  # the BME280 adds p_hpa


def test_boot_increments(mosquitto: Any, micropython_bin: str, repo_root: Path,
                         tmp_path: Path) -> None:
    dev = "fw-boot"
    boots = []
    for _ in range(2):
        col = Collector(mosquitto.host, mosquitto.port)
        board = Board(micropython_bin, repo_root, tmp_path)
        board.write_config(board_config(mosquitto.host, mosquitto.port, dev, max_readings=2))
        try:
            assert board.run(timeout=60) == 0, board.output()
            wait_for(lambda: len(col.seqs(SITE, dev)) >= 2, 10, "2 readings")
            envs = col.envelopes(SITE, dev)
            boot = max(e["boot"] for e in envs)
            # seq restarts per boot; with no end-to-end ack the outbox replays older boots too
            assert sorted(r["seq"] for e in envs if e["boot"] == boot for r in e["r"]) == [1, 2]
            boots.append(boot)
        finally:
            board.kill()
            col.close()
    assert boots == [1, 2]
    assert _status(mosquitto, dev)["boot"] == 2


def test_broker_down_at_boot(mosquitto: Any, micropython_bin: str, repo_root: Path,
                             tmp_path: Path) -> None:
    dev = "fw-down"
    # A persistent session (clean_session off): the broker keeps the subscription and queues
    # the board's messages for it whenever the board gets through, so nothing races.
    col = Collector(mosquitto.host, mosquitto.port, client_id="fw-down-watch", clean=False)
    col.close()
    mosquitto.stop()
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(board_config(mosquitto.host, mosquitto.port, dev))
    try:
        board.start()
        board.wait_line(r"sampled 20 readings, sampling done", 30)
        board.wait_line(r"mqtt: .* down .* retry in", 10)
        assert board.proc is not None and board.proc.poll() is None
        mosquitto.start()
        assert board.wait_exit(60) == 0, board.output()
        assert re.search(r"^Sen done: 20 readings acked .* dropped 0", board.output(), re.M)
        col = Collector(mosquitto.host, mosquitto.port, client_id="fw-down-watch", clean=False)
        try:
            wait_for(lambda: len(col.seqs(SITE, dev)) >= 20, 15, "20 readings")
            now = int(time.time() * 1000)
            for p, _ in col.on(f"sen/v1/{SITE}/{dev}/telemetry"):
                check_envelope(p, dev, "sim", now)
            assert sorted(set(col.seqs(SITE, dev))) == list(range(1, 21))
        finally:
            col.close()
    finally:
        board.kill()


def test_a_silent_broker_is_timed_out_and_left(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                                tmp_path: Path) -> None:
    """No CONNACK: the connect attempt times out; a link that goes silent once connected: the
    keepalive notices. Either way the board reconnects and every reading arrives."""
    dev = "fw-silent"
    px = Proxy(mosquitto.host, mosquitto.port)
    px.silent = True
    col = Collector(mosquitto.host, mosquitto.port)
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(board_config("127.0.0.1", px.port, dev, max_readings=60, interval_ms=250, batch_max=2,
                                    broker={"host": "127.0.0.1", "port": px.port, "keepalive": 5}))
    try:
        board.start()
        board.wait_line(r"mqtt: error .*timeout.* down .* retry in", 12)  # CONNECT sent, no CONNACK
        assert board.proc is not None and board.proc.poll() is None
        px.silent = False
        board.wait_line(r"mqtt: connected to", 15)
        wait_for(lambda: len(col.seqs(SITE, dev)) >= 4, 15, "4 readings")
        px.silent = True  # connected, and from now on nothing goes through either way
        board.wait_line(r"mqtt: error .*no answer.* down .* retry in", 15)
        px.silent = False
        assert board.wait_exit(60) == 0, board.output()
        assert re.search(r"^Sen done: 60 readings acked .* dropped 0", board.output(), re.M), board.output()
        wait_for(lambda: sorted(set(col.seqs(SITE, dev))) == list(range(1, 61)), 10, "60 readings")
    finally:
        board.kill()
        col.close()
        px.close()
