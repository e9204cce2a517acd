"""The flash id, `fid`, on the real MicroPython VM (DESIGN.md, Identity; firmware/README.md):
drawn when the flash holds no boot counter and kept beside it, drawn for a flash upgraded from
firmware that kept none (its boot counter goes on), sent in every envelope; and a board never
applies an ack of another flash: an old retained ack left on the broker for the same device
name frees none of a re-flashed board's readings."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, Collector, board_config, wait_for
from fw_net import AckResponder, Proxy

pytestmark = pytest.mark.firmware
SITE = "fwfid"


def test_fid_drawn_kept_and_redrawn(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    code = """
import sys, os, json
sys.path.insert(1, %r)
import bootcount
def nb():
    try:
        return list(bootcount.next_boot())
    except bootcount.BootCountError as e:
        return str(e)
def rm(p):
    os.remove(p)
def put(p, t):
    with open(p, "w") as f: f.write(t)
out = [nb(), nb(), nb()]                  # a new flash, then two boots
rm("sen_boot.txt"); out.append(nb())     # erased (the fid file left behind: a new fid all the same)
rm("sen_fid.txt"); put("sen_boot.txt", "41\\n"); out.append(nb())  # firmware older than fid
out.append(nb())
put("sen_fid.txt", "x"); out.append(nb())  # a corrupt fid: drawn again, the count goes on
put("sen_fid.txt", "0"); out.append(nb())
put("sen_boot.txt", "x"); out.append(nb())  # a corrupt counter still stops the board
print(json.dumps(out))
print(sorted(f for f in os.listdir() if f.startswith("sen_")))
""" % str(repo_root / "firmware" / "lib")
    done = subprocess.run([micropython_bin, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    out = json.loads(lines[-2])
    boots = [x[0] for x in out[:8]]
    fids = [x[1] for x in out[:8]]
    assert boots == [1, 2, 3, 1, 42, 43, 44, 45]
    assert all(0 < f < 1 << 32 for f in fids)
    assert fids[0] == fids[1] == fids[2]
    assert fids[3] != fids[2]  # an erased flash is a new flash
    assert fids[4] not in fids[:4] and fids[4] == fids[5]
    assert fids[6] != fids[5] and fids[7] != fids[6]
    assert "corrupt boot counter" in out[8]
    # the last boot run without a fid: 41 from the upgrade on (a redrawn fid changes nothing)
    assert [x[2] for x in out[:8]] == [0, 0, 0, 0, 41, 41, 41, 41]
    assert lines[-1] == "['sen_boot.txt', 'sen_fid.txt', 'sen_fid0.txt']"  # no .tmp left behind
    assert sum("flash id" in ln for ln in lines) == 5  # each draw is said on the console


def _retained_ack(host: str, port: int, dev: str) -> dict[str, Any]:
    c = Collector(host, port)
    try:
        topic = f"sen/v1/{SITE}/{dev}/ack"
        wait_for(lambda: bool(c.on(topic)), 5, "the retained ack")
        return json.loads(c.on(topic)[-1][0])
    finally:
        c.close()


def test_an_old_flash_retained_ack_frees_nothing(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                                 tmp_path: Path) -> None:
    dev = "fid-reflash"
    # The old flash: 30 readings of boot 1, all acked; the broker keeps its ack (seq 30).
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id="ackr-fid-old")
    old = Board(micropython_bin, repo_root, tmp_path / "old")
    old.write_config(board_config(mosquitto.host, mosquitto.port, dev, site=SITE, ack="e2e",
                                  max_readings=30, interval_ms=20))
    try:
        assert old.run(timeout=60) == 0, old.output()
    finally:
        old.kill()
        ack.close()
    old_fid = int((tmp_path / "old" / "sen_fid.txt").read_text())
    assert _retained_ack(mosquitto.host, mosquitto.port, dev) == {"fid": old_fid, "boot": 1, "seq": 30, "anchor": 0}

    # The same name on an erased flash: boot 1 again, 5 readings sampled while the broker is
    # out of reach, then the old ack arrives (retained) with them in the outbox.
    px = Proxy(mosquitto.host, mosquitto.port)
    px.down = True
    col = Collector(mosquitto.host, mosquitto.port)
    new = Board(micropython_bin, repo_root, tmp_path / "new")
    new.write_config(board_config("127.0.0.1", px.port, dev, site=SITE, ack="e2e", ack_timeout_ms=1000,
                                  max_readings=5, interval_ms=20))
    try:
        new.start()
        new.wait_line(r"sampling done", 20)
        new_fid = int((tmp_path / "new" / "sen_fid.txt").read_text())
        assert new_fid != old_fid
        px.down = False
        new.wait_line(r"ack: fid \d+ is another flash's: ignored", 15)
        wait_for(lambda: sorted(set(col.seqs(SITE, dev))) == [1, 2, 3, 4, 5], 15, "boot 1's 5 readings")
        assert {e["fid"] for e in col.envelopes(SITE, dev)} == {new_fid}
        px.cut()  # a reconnect: the old ack comes again, and is not logged again
        new.wait_line(r"sending again from the oldest unacked", 10)
        time.sleep(1.5)
        assert new.proc is not None and new.proc.poll() is None, new.output()  # still holds all 5
        out = new.output()
        assert len(re.findall(r"another flash's", out)) == 1, out
        assert "readings done" not in out, out
        assert out.count("mqtt: connected") >= 2, out
        # the gateway's ack of this flash frees them
        col.client.publish(f"sen/v1/{SITE}/{dev}/ack", json.dumps({"fid": new_fid, "boot": 1, "seq": 5,
                                                                   "anchor": 0}), qos=1, retain=True)
        assert new.wait_exit(30) == 0, new.output()
        assert "ack boot 1 seq 5: 5 readings done, 0 in outbox" in new.output()
    finally:
        new.kill()
        col.close()
        px.close()


def test_readings_of_boots_before_the_fid_go_as_fid_0(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                                      tmp_path: Path) -> None:
    """A flash written by firmware older than fid: its unacked readings of those boots go out as
    fid 0 (how they were sent, or would have been, before the upgrade), so a gateway counts them
    once under the key it already knows; the new boots under the new fid; both acks apply."""
    dev = "fid-upgrade"
    px = Proxy(mosquitto.host, mosquitto.port)
    px.down = True
    flash = tmp_path / "flash"
    board = Board(micropython_bin, repo_root, flash)
    board.write_config(board_config("127.0.0.1", px.port, dev, site=SITE, ack="e2e", ack_timeout_ms=1000,
                                    max_readings=5, interval_ms=20))
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id="ackr-fid-up")
    try:
        board.start()  # boot 1, offline: its 5 readings stay in the outbox
        board.wait_line(r"sampling done", 20)
        board.kill()
        (flash / "sen_fid.txt").unlink()  # the flash as firmware without fid left it
        px.down = False
        board.write_config(board_config("127.0.0.1", px.port, dev, site=SITE, ack="e2e", ack_timeout_ms=1000,
                                        max_readings=3, interval_ms=20))
        assert board.run(timeout=60) == 0, board.output()  # boot 2: sends both boots, all acked
        out = board.output()
        fid = int((flash / "sen_fid.txt").read_text())
        assert "flash id %d drawn (none kept yet)" % fid in out and (flash / "sen_fid0.txt").read_text() == "1\n"
        assert ack.seqs(dev, 1, fid=0) == [1, 2, 3, 4, 5] and ack.seqs(dev, 1, fid=fid) == []
        assert ack.seqs(dev, 2, fid=fid) == [1, 2, 3] and ack.seqs(dev, 2, fid=0) == []
        assert "another flash's" not in out and "readings done, 0 in outbox" in out, out
    finally:
        board.kill()
        ack.close()
        px.close()
