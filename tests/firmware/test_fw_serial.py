"""Code paths with no broker, on the real VM: the serial transport (SEN1 frames on stdout
checked against tests/contract/serial, an ack frame on stdin frees the outbox), deep sleep
(exit 4, "sleeping" with until, the next boot reports reset "deepsleep"), safe mode after
crash boots (not after power cuts), and the cmd set_interval persisted across a restart."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from fw_board import build_mpy, wait_for

pytestmark = pytest.mark.firmware
FRAMES = json.loads((Path(__file__).resolve().parents[1] / "contract" / "serial" / "frames.json").read_text())


def frame(doc: dict[str, Any]) -> bytes:
    js = json.dumps(doc, separators=(",", ":")).encode()
    return b"SEN1 " + js + b" %08x\n" % zlib.crc32(js)


class SerialBoard:
    """The firmware with transport serial: stdout is its USB port, stdin the gateway's side."""

    def __init__(self, mp: str, root: Path, flash: Path, **cfg: Any):
        self.cmd = [mp, "-X", "heapsize=128K", str(root / "firmware" / "main.py")]
        self.env = dict(os.environ, SEN_MPY=str(build_mpy(mp, root)))
        self.flash = flash
        flash.mkdir(parents=True, exist_ok=True)
        conf = {"site": "fwser", "device_id": "ser-1", "board": "sim", "transport": "serial",
                "broker": {"host": "127.0.0.1", "port": 1}, "interval_ms": 20, "batch_max": 5,
                "max_readings": 5, "ack": "e2e", "sim": {"seed": 3}}
        conf.update(cfg)
        (flash / "config.json").write_text(json.dumps(conf))
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(5)  # the pipe drained to its end
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def start(self) -> None:
        self.lines = []
        self.proc = subprocess.Popen(self.cmd, cwd=self.flash, env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def frames(self) -> list[dict[str, Any]]:
        out = []
        for ln in list(self.lines):
            if ln.startswith("SEN1 "):
                js, crc = ln[5:].rsplit(" ", 1)
                # the contract's CRC: zlib's CRC-32 over the JSON bytes, 8 lowercase hex digits
                assert crc == "%08x" % zlib.crc32(js.encode()), ln
                out.append(json.loads(js))
        return out

    def readings(self) -> list[dict[str, Any]]:
        return [r for f in self.frames() if "kind" not in f for r in f["r"]]

    def send(self, doc: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(frame(doc))
        self.proc.stdin.flush()

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("board did not exit:\n" + "\n".join(self.lines)) from None
        self._close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()


def test_contract_ack_frame_has_the_golden_crc() -> None:
    gold = FRAMES["valid"]["gateway_to_device"][0]["line"]
    js = gold[5:gold.rfind(" ")]
    assert frame(json.loads(js)).decode().rstrip("\n") == gold


def test_serial_frames_and_ack_frees_the_outbox(micropython_bin: str, repo_root: Path,
                                                tmp_path: Path) -> None:
    b = SerialBoard(micropython_bin, repo_root, tmp_path)
    try:
        b.start()
        wait_for(lambda: len(b.readings()) >= 5, 20, "5 readings in frames")
        frames = b.frames()
        status = [f for f in frames if f.get("kind") == "status"]
        assert status and status[0]["state"] == "online" and status[0]["site"] == "fwser"
        tel = [f for f in frames if "kind" not in f]
        assert all(f["site"] == "fwser" and f["dev"] == "ser-1" and f["lo"] == 1 for f in tel)
        assert [r["seq"] for r in b.readings()] == [1, 2, 3, 4, 5]
        assert b.proc is not None and b.proc.poll() is None  # holds them until the ack
        fid = int((tmp_path / "sen_fid.txt").read_text())
        assert all(f["fid"] == fid for f in tel)  # the flash id, as the gateway's acks carry it
        b.send({"kind": "ack", "fid": fid, "boot": 1, "seq": 3, "anchor": 0})
        b.send({"kind": "ack", "fid": fid, "boot": 1, "seq": 5, "anchor": 0})
        assert b.wait() == 0, "\n".join(b.lines)
        out = "\n".join(b.lines)
        assert "Sen done: 5 readings acked" in out and "3 readings done" in out, out
    finally:
        b.kill()


def test_serial_acks_of_another_flash_are_ignored(micropython_bin: str, repo_root: Path,
                                                  tmp_path: Path) -> None:
    # Every frame carries the board's flash id; an ack frame with another fid frees nothing
    # (logged once), one with its own fid counts, and one without fid (a gateway older than
    # fid) still counts.
    b = SerialBoard(micropython_bin, repo_root, tmp_path)
    try:
        b.start()
        wait_for(lambda: len(b.readings()) >= 5, 20, "5 readings in frames")
        fid = int((tmp_path / "sen_fid.txt").read_text())
        tel = [f for f in b.frames() if "kind" not in f]
        assert tel and all(f["fid"] == fid for f in tel), tel
        other = fid ^ 1
        b.send({"kind": "ack", "fid": other, "boot": 1, "seq": 5, "anchor": 0})
        b.send({"kind": "ack", "fid": other, "boot": 1, "seq": 4, "anchor": 0})
        wait_for(lambda: any("another flash's" in ln for ln in b.lines), 10, "the ignored ack logged")
        time.sleep(0.5)
        assert b.proc is not None and b.proc.poll() is None, "\n".join(b.lines)
        b.send({"kind": "ack", "fid": fid, "boot": 1, "seq": 3, "anchor": 0})
        wait_for(lambda: any("3 readings done, 2 in outbox" in ln for ln in b.lines), 10, "own ack")
        b.send({"kind": "ack", "boot": 1, "seq": 5, "anchor": 0})  # no fid
        assert b.wait() == 0, "\n".join(b.lines)
        assert sum("another flash's" in ln for ln in b.lines) == 1, b.lines
        assert not any("bad message" in ln for ln in b.lines), b.lines
    finally:
        b.kill()


def test_serial_noise_and_bad_crc_are_skipped(micropython_bin: str, repo_root: Path,
                                              tmp_path: Path) -> None:
    b = SerialBoard(micropython_bin, repo_root, tmp_path, max_readings=2, batch_max=2)
    try:
        b.start()
        wait_for(lambda: len(b.readings()) >= 2, 20, "2 readings")
        assert b.proc is not None and b.proc.stdin is not None
        for bad in FRAMES["invalid"]:  # banners, prompts, half lines, a bad CRC: no effect
            b.proc.stdin.write(bad["line"].encode() + b"\n")
        bad_ack = frame({"kind": "ack", "boot": 1, "seq": 2, "anchor": 0}).replace(b"SEN1 {", b"SEN1 {  ")
        b.proc.stdin.write(bad_ack)  # JSON changed after the CRC: must not free anything
        b.proc.stdin.flush()
        time.sleep(0.5)
        assert b.proc.poll() is None, "\n".join(b.lines)
        b.send({"kind": "ack", "boot": 1, "seq": 2, "anchor": 0})
        assert b.wait() == 0, "\n".join(b.lines)
        # the two frames with a bad CRC are counted (d.bad_cmd) and logged; noise is not
        assert sum("frame: bad message" in ln for ln in b.lines) == 2, "\n".join(b.lines)
    finally:
        b.kill()


def test_deep_sleep_then_wake(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    b = SerialBoard(micropython_bin, repo_root, tmp_path, mode="deep_sleep", sleep_ms=1000,
                    ack="puback", max_readings=0, ack_wait_ms=0)
    try:
        b.start()
        assert b.wait() == 4, "\n".join(b.lines)
        sleeping = [f for f in b.frames() if f.get("kind") == "status" and f["state"] == "sleeping"]
        assert sleeping and sleeping[0]["until"] > time.time() * 1000, b.lines
        assert any(ln.startswith("Sen sleeping: ms=1000 until=") for ln in b.lines)
        assert (tmp_path / "sen_sleep.json").exists()
        assert b.readings(), b.lines  # it sampled before sleeping
        b.start()  # the simulator's wake-up
        assert b.wait() == 4, "\n".join(b.lines)
        tel = [f for f in b.frames() if "kind" not in f]
        assert tel and tel[0]["boot"] == 2 and tel[0]["d"]["reset"] == "deepsleep", tel
    finally:
        b.kill()


def test_safe_mode_after_crash_boots_and_not_after_power_cuts(micropython_bin: str, repo_root: Path,
                                                               tmp_path: Path) -> None:
    b = SerialBoard(micropython_bin, repo_root, tmp_path, safe_after=2, max_readings=0)
    try:
        for _ in range(4):  # four boots whose power is cut before they ran 60 s: the board runs on
            b.start()
            wait_for(lambda: any(ln.startswith("Sen firmware") for ln in b.lines), 20, "boot line")
            b.kill()
        assert (tmp_path / "sen_crash.txt").read_text().strip() == "1"  # only the boot in progress
        b.env["SEN_RESET"] = "watchdog"  # from here each boot follows a crash the watchdog ended:
        b.start()  # the last one (killed above) and this one make two
        wait_for(lambda: any(ln.startswith("Sen firmware") for ln in b.lines), 20, "boot line")
        b.kill()
        b.start()
        assert b.wait() == 3, "\n".join(b.lines)
        assert any(ln.startswith("Sen safe mode: 2 boots") for ln in b.lines), b.lines
        (tmp_path / "sen_crash.txt").unlink()  # what the README tells the operator
        b.start()
        wait_for(lambda: any(ln.startswith("Sen firmware") for ln in b.lines), 20, "boot after reset")
    finally:
        b.kill()


def test_cmd_set_interval_persists_across_restart(micropython_bin: str, repo_root: Path,
                                                  tmp_path: Path) -> None:
    b = SerialBoard(micropython_bin, repo_root, tmp_path, max_readings=0, ack="puback",
                    sensors=[{"type": "sht31", "addr": 68}])
    try:
        b.start()
        wait_for(lambda: len(b.readings()) >= 1, 20, "a reading")
        b.send({"kind": "cmd", "cmd": "set_interval", "interval_ms": 400})
        b.send({"kind": "cmd", "cmd": "bogus"})
        wait_for(lambda: (tmp_path / "sen_state.json").exists(), 10, "sen_state.json")
        assert json.loads((tmp_path / "sen_state.json").read_text()) == {"interval_ms": 400}
        b.send({"kind": "cmd", "cmd": "diag"})
        wait_for(lambda: any(f.get("d", {}).get("bad_cmd") == 1 for f in b.frames()), 10, "bad_cmd")
        b.kill()
        b.start()
        # boot 2's own readings (boot 1's unsent ones are replayed first)
        def boot2() -> list[int]:
            return [r["ts"] for f in b.frames() if "kind" not in f and f["boot"] == 2 for r in f["r"]]
        wait_for(lambda: len(boot2()) >= 3, 20, "3 readings after restart")
        ts = boot2()[:3]
        assert all(y - x >= 350 for x, y in zip(ts, ts[1:])), ts  # 400 ms, not the 20 ms config
    finally:
        b.kill()
