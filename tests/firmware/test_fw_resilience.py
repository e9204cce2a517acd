"""The board's promise on the real MicroPython VM against a real Mosquitto: every reading
not knowingly dropped reaches the (stand-in) gateway exactly once by (device, boot, seq),
through a broker down at boot, a broker restart, a cut link, a power cut, a full outbox.
The end-to-end ack comes from fw_net.AckResponder (the gateway's ack rule, fid included)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, board_config, wait_for
from fw_net import AckResponder, Proxy

pytestmark = pytest.mark.firmware
SITE = "fwres"


def _board(mp: str, root: Path, flash: Path, host: str, port: int, dev: str, **over: Any) -> Board:
    b = Board(mp, root, flash)
    cfg = board_config(host, port, dev, site=SITE, ack="e2e", ack_timeout_ms=2000, **over)
    b.write_config(cfg)
    return b


def test_broker_restarted_mid_stream(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                     tmp_path: Path) -> None:
    dev = "res-restart"
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE)
    b = _board(micropython_bin, repo_root, tmp_path, mosquitto.host, mosquitto.port, dev,
               max_readings=60)
    try:
        b.start()
        wait_for(lambda: len(ack.seqs(dev, 1)) >= 10, 20, "10 readings")
        mosquitto.stop()
        b.wait_line(r"mqtt: .* (lost|down)", 10)
        mosquitto.start()
        assert b.wait_exit(60) == 0, b.output()
        assert ack.seqs(dev, 1) == list(range(1, 61))
    finally:
        b.kill()
        ack.close()


def test_link_cut_during_publish(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                 tmp_path: Path) -> None:
    dev = "res-cut"
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE)
    px = Proxy(mosquitto.host, mosquitto.port)
    b = _board(micropython_bin, repo_root, tmp_path, "127.0.0.1", px.port, dev,
               max_readings=60, batch_max=3)
    try:
        b.start()
        deadline = time.monotonic() + 60
        while b.proc is not None and b.proc.poll() is None and time.monotonic() < deadline:
            n = len(ack.seqs(dev, 1))
            wait_for(lambda: len(ack.seqs(dev, 1)) > n or b.proc is None or b.proc.poll() is not None,
                     20, "progress")
            if px.cuts < 4:
                px.cut()  # right after a delivery: the next publish is on the wire
        assert b.wait_exit(30) == 0, b.output()
        assert px.cuts >= 2
        assert ack.seqs(dev, 1) == list(range(1, 61))
    finally:
        b.kill()
        px.close()
        ack.close()


def test_power_cut_mid_write_then_restart(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                          tmp_path: Path) -> None:
    dev = "res-power"
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE)
    px = Proxy(mosquitto.host, mosquitto.port)
    b = _board(micropython_bin, repo_root, tmp_path, "127.0.0.1", px.port, dev,
               max_readings=0, interval_ms=20)
    try:
        b.start()
        wait_for(lambda: len(ack.seqs(dev, 1)) >= 5, 20, "5 readings")
        px.down = True  # the link goes; the board keeps writing its outbox
        px.cut()
        time.sleep(0.5)  # let it write: the power cut must land mid-stream
        b.kill()  # SIGKILL: a power cut, possibly mid-append
        px.down = False
        b.write_config(board_config("127.0.0.1", px.port, dev, site=SITE, ack="e2e",
                                    ack_timeout_ms=2000, max_readings=10))
        b.start()
        assert b.wait_exit(60) == 0, b.output()
        s1 = ack.seqs(dev, 1)
        assert s1 == list(range(1, len(s1) + 1)) and len(s1) > 5, s1  # no gap, nothing twice
        assert ack.seqs(dev, 2) == list(range(1, 11))
    finally:
        b.kill()
        px.close()
        ack.close()


def test_full_outbox_drops_oldest_counted(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                          tmp_path: Path) -> None:
    dev = "res-full"
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE)
    px = Proxy(mosquitto.host, mosquitto.port)
    px.down = True
    b = _board(micropython_bin, repo_root, tmp_path, "127.0.0.1", px.port, dev,
               max_readings=30, outbox={"max": 10})
    try:
        b.start()
        b.wait_line(r"sampling done", 30)
        px.down = False
        assert b.wait_exit(60) == 1, b.output()  # 1: readings were dropped
        assert "dropped 20" in b.output()
        assert ack.seqs(dev, 1) == list(range(21, 31))
    finally:
        b.kill()
        px.close()
        ack.close()


def test_first_readings_lost_before_subscribe_arrive_once(
        mosquitto: Any, micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    # Nobody subscribed yet: the broker PUBACKs the first envelopes and drops them. The
    # contiguous ack then stays below them (here: no ack at all), so after ack_timeout_ms the
    # board sends again from the ack's seq + 1 and everything arrives.
    dev = "res-early"
    b = _board(micropython_bin, repo_root, tmp_path, mosquitto.host, mosquitto.port, dev,
               max_readings=30, batch_max=5)
    ack = None
    try:
        b.start()
        b.wait_line(r"tx boot 1 seq \.\.10 ", 20)  # two envelopes gone before anyone listens
        # a new session: nothing was queued for it
        ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id="ackr-early")
        assert b.wait_exit(60) == 0, b.output()
        assert ack.seqs(dev, 1) == list(range(1, 31))
        assert "ack: stuck below" in b.output()
        assert ack.lo.get((dev, ack.fids[dev], 1), 0) >= 1  # every envelope says what the board still holds
    finally:
        b.kill()
        if ack is not None:
            ack.close()


def test_old_boot_replay_lost_then_acked_by_ob(mosquitto: Any, micropython_bin: str,
                                               repo_root: Path, tmp_path: Path) -> None:
    # Boot 1 samples 30 readings with the broker out of reach and loses power: they wait on
    # flash. Boot 2 re-sends them first, but the first three envelopes of boot 1 are lost on
    # the way while boot 2's readings arrive. Boot 2's envelopes carry "ob": 1, so the ack is
    # boot 1's contiguous mark (tests/contract/ack.md, "Older boots") and never a boot-2 ack
    # that would free boot 1's lost readings unseen; the board re-sends them after its ack
    # timeout and every reading of both boots arrives.
    dev = "res-ob"
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE)
    px = Proxy(mosquitto.host, mosquitto.port)
    px.down = True
    b = _board(micropython_bin, repo_root, tmp_path, "127.0.0.1", px.port, dev,
               max_readings=30, batch_max=5, interval_ms=20)
    try:
        b.start()
        b.wait_line(r"sampling done", 30)
        b.kill()  # power cut: 30 readings of boot 1 stay in the outbox
        ack.drop(dev, 1, 3)
        px.down = False
        b.write_config(board_config("127.0.0.1", px.port, dev, site=SITE, ack="e2e",
                                    ack_timeout_ms=2000, max_readings=20, batch_max=5))
        b.start()
        assert b.wait_exit(60) == 0, b.output()
        assert ack.dropped[(dev, 1)] == 3
        assert ack.seqs(dev, 1) == list(range(1, 31)), b.output()
        assert ack.seqs(dev, 2) == list(range(1, 21)), b.output()
        assert ack.obs and all(o == 1 for _, bt, o in ack.obs if bt == 2), ack.obs
        assert "ack: stuck below" in b.output()
    finally:
        b.kill()
        px.close()
        ack.close()
