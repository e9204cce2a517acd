"""The board's OTA receiver and boot step (firmware/lib/ota.py, otaboot.py) on the real
MicroPython VM at -X heapsize=64K, fed the chunks of a bundle `sen ota build` made (DESIGN.md,
OTA), with the reboots the app makes between them (the head checked at boot, then the files
unpacked at boot): the files land in the inactive slot byte for byte and the slot is marked for
trial; a transfer resumes after a reboot; and a bad signature, a different key, a wrong board
profile, a changed file, a downgrade and a truncated chunk are each refused with the reason
code, the old version untouched (no trial marked, no slot left)."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from ota_fixtures import bundle, firmware, keys

from gateway.ops import ota, ota_keys
from gateway.ops.ota_push import chunk, chunks, transfer_id

pytestmark = pytest.mark.firmware

LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"
__all__ = ["firmware", "keys"]  # fixtures (ota_fixtures.py)

# Runs inside MicroPython: argv = lib dir, flash dir, public key hex ("-": none), board, plan
# file (records: op u8, length u32, payload; op 1 = a message of the ota topic, op 2 = a
# reboot, op 3 = a message whose link is lost halfway: only its first pieces come), piece size (0: each message whole, as a serial board's link hands it over; else in
# pieces of that size, as the MQTT client does, mqtt.py). As the app and runner do: a message
# that leaves "chk" in the state is followed by a reboot (the boot step, otaboot.boot), as is
# op 2; a reboot drops the receiver (ota.py) and all it held. Prints one character a step:
# 0/1, whether the message asked for the status to be published; R, a reboot; T, a boot step
# that marked a slot for trial (the run stops there). Then STATE, the transfer's state.
# A 7th argument, ERRNO:K, makes the flash fail under sen_ota.bin: its opening raises
# OSError(ERRNO) (K < 0), or its writes once K bytes went (the flash full: 28, ENOSPC).
_SCRIPT = """
import sys, os, struct, json
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
if len(sys.argv) > 7:
    import builtins
    _errno, _k = [int(x) for x in sys.argv[7].split(":")]
    _open = builtins.open
    class _Failing:
        def __init__(self, f):
            self.f = f
        def write(self, b):
            global _k
            if _k < len(b):
                raise OSError(_errno)
            _k -= len(b)
            return self.f.write(b)
        def seek(self, *a):
            return self.f.seek(*a)
        def read(self, *a):
            return self.f.read(*a)
        def close(self):
            self.f.close()
        def __enter__(self):
            return self
        def __exit__(self, *a):
            self.f.close()
    def _opener(p, *a):
        if p != "sen_ota.bin":
            return _open(p, *a)
        if _k < 0:
            raise OSError(_errno)
        return _Failing(_open(p, *a))
    builtins.open = _opener
import otaboot
PIECE = int(sys.argv[6])
class App:
    pass
def boot():
    sys.modules.pop("ota", None)
    cfg = {"ota_pub": None if sys.argv[3] == "-" else sys.argv[3], "board": sys.argv[4]}
    again = otaboot.boot(cfg)
    a = App()
    a.ota, a.cfg, a._ota_pub = cfg["ota"], cfg, False
    return a, again
a, again = boot()
rets = bytearray()  # one byte per step: small, for thousands of chunks
with open(sys.argv[5], "rb") as f:
    hdr = bytearray(5)
    while f.readinto(hdr) == 5 and not again:
        op, n = struct.unpack(">BI", hdr)
        msg = memoryview(f.read(n))
        if op != 2:
            a._ota_pub = False
            ota = __import__("ota")
            if PIECE:
                for pos in range(0, max(n, 1) // (2 if op == 3 else 1), PIECE):
                    ota.take(a, msg[pos:pos + PIECE], pos, max(0, n - pos - PIECE))
            else:
                ota.take(a, msg)
            rets.append(49 if a._ota_pub else 48)
        if op == 2 or a.ota.get("chk"):
            a, again = boot()
            rets.append(84 if again else 82)  # T, R
print("RETS", rets.decode())
print("STATE", json.dumps(a.ota))
"""


def _bundle(keys: Path, firmware: Path, tmp_path: Path, **over: Any) -> bytes:
    return bundle(keys, firmware, tmp_path / "b.senota", **over)


def _run(micropython_bin: str, tmp_path: Path, keys: Path | None, plan: Sequence[bytes | tuple[bytes] | None], *,
         board: str = "sim", running: str | None = None, piece: int = 0,
         flash_fails: str | None = None) -> tuple[str, dict[str, Any], Path]:
    """Run PLAN on a board whose flash is tmp_path/flash (kept from run to run); with RUNNING,
    the board runs that version from slot b; with PIECE, each message is handed over in pieces
    of that size (a message in a 1-tuple: only its first half, the link lost); with FLASH_FAILS
    (ERRNO:K, _SCRIPT), sen_ota.bin's flash fails. Returns the steps, the state, the flash dir."""
    flash = tmp_path / "flash"
    flash.mkdir(exist_ok=True)
    if running is not None:
        (flash / "sen_slot.json").write_text(json.dumps({"active": "b", "ver": running}))
    script, plan_file = tmp_path / "run.py", tmp_path / "plan.bin"
    script.write_text(_SCRIPT)
    with open(plan_file, "wb") as f:
        for msg in plan:
            if isinstance(msg, tuple):
                f.write(struct.pack(">BI", 3, len(msg[0])) + msg[0])
            else:
                f.write(struct.pack(">BI", 2, 0) if msg is None else struct.pack(">BI", 1, len(msg)) + msg)
    pub = ota_keys.load_pub(keys / "ota.pub").hex() if keys is not None else "-"
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", str(script), str(LIB), str(flash), pub, board,
                           str(plan_file), str(piece), *([flash_fails] if flash_fails else [])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("RETS", "STATE")))
    return lines["RETS"], json.loads(lines["STATE"]), flash


def _msgs(bundle: bytes, size: int = 100) -> list[bytes]:
    """The chunks a sender sends: the head, then (after the board's check at boot) the files,
    each part cut in SIZE-byte chunks from its own start."""
    head = ota.HEAD + ota.manifest_length(bundle[:12])
    tid = transfer_id(bundle)
    return [m for _, m in chunks(bundle[:head], size)] + \
        [chunk(tid, at, bundle[at:at + size]) for at in range(head, len(bundle), size)]


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The members of the state the status carries."""
    return {k: v for k, v in state.items() if k in ("id", "ver", "st", "at", "of", "why")}


def _slot_matches(flash: Path, firmware: Path, slot: str = "a") -> None:
    for rel in ("main.py", "lib/app.py", "lib/empty.py", "lib/log.py"):
        assert (flash / f"app_{slot}" / rel).read_bytes() == (firmware / rel).read_bytes(), rel
    assert not (flash / f"app_{slot}" / "boot.py").exists()
    assert not (flash / "sen_ota.bin").exists() and not (flash / "sen_ota_files.bin").exists()


@pytest.mark.parametrize(("size", "piece"), [(7, 0), (100, 13), (2048, 128)])
def test_a_bundle_lands_in_the_inactive_slot_and_goes_on_trial(micropython_bin: str, tmp_path: Path, keys: Path,
                                                               firmware: Path, size: int, piece: int) -> None:
    # 7 B: the header, signature and manifest in many chunks, each whole; 100 B in pieces of 13
    # (the magic and the manifest's length cross a piece); 2048 B: the whole head in one chunk,
    # the files in a few, in 128-byte pieces as the MQTT client hands them over
    bundle = _bundle(keys, firmware, tmp_path)
    rets, state, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle, size), piece=piece)
    assert _public(state) == {"id": transfer_id(bundle).hex(), "ver": "1.5.0", "st": "ready", "at": len(bundle),
                              "of": len(bundle)}
    assert rets.count("R") == 1 and rets.endswith("1T")  # the head checked at a reboot, the files at another
    _slot_matches(flash, firmware)
    assert json.loads((flash / "sen_slot.json").read_text()) == {"active": "", "try": "a", "left": 3, "tver": "1.5.0"}


def test_a_transfer_resumes_after_a_reboot(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    bundle = _bundle(keys, firmware, tmp_path)
    msgs = _msgs(bundle, 64)
    half = len(msgs) // 2 + 3
    # the link drops mid-transfer, the board reboots; the sender resends everything (duplicates
    # are dropped) after a gap (a chunk far ahead is answered, not taken)
    plan: list[bytes | None] = [*msgs[:half], None, msgs[-1], *msgs]
    rets, state, flash = _run(micropython_bin, tmp_path, keys, plan)
    assert state["st"] == "ready" and state["at"] == len(bundle)
    assert rets[half + 1:half + 3] == "R1"  # (one reboot before: the head's check) the gap asks for `at`
    _slot_matches(flash, firmware)


def test_a_chunk_whose_link_is_lost_halfway_counts_for_nothing(micropython_bin: str, tmp_path: Path, keys: Path,
                                                                firmware: Path) -> None:
    # MQTT hands a chunk over in pieces; the link lost after half of one (in the head, then in
    # the files): `at` does not move, the same chunk whole is then taken
    bundle = _bundle(keys, firmware, tmp_path)
    msgs = _msgs(bundle, 256)
    head = -(-(ota.HEAD + ota.manifest_length(bundle[:12])) // 256)  # the head's chunks
    assert head >= 2 and len(msgs) > head + 2
    plan: list[bytes | tuple[bytes] | None] = [msgs[0], (msgs[1],), *msgs[1:head + 1], (msgs[head + 1],),
                                               *msgs[head + 1:]]
    rets, state, flash = _run(micropython_bin, tmp_path, keys, plan, piece=64)
    assert state["st"] == "ready" and state["at"] == len(bundle)
    assert rets[1] == "0" and "R" in rets
    _slot_matches(flash, firmware)


def test_a_truncated_chunk_is_refused_and_the_transfer_goes_on(micropython_bin: str, tmp_path: Path, keys: Path,
                                                               firmware: Path) -> None:
    bundle = _bundle(keys, firmware, tmp_path)
    msgs = _msgs(bundle)
    tid = transfer_id(bundle)
    assert ota.HEAD + ota.manifest_length(bundle[:12]) > 600  # all this happens inside the head
    # a message cut inside its header is refused (bad_chunk, `at` stays); a chunk cut short
    # is taken for what it holds, and the next one is then a gap, answered with `at`
    cut = msgs[5][:len(msgs[5]) - 30]
    plan: list[bytes | None] = [*msgs[:5], msgs[5][:9], cut, msgs[6]]
    rets, state, _ = _run(micropython_bin, tmp_path, keys, plan)
    assert state["st"] == "recv" and state["why"] == "bad_chunk" and state["at"] == 570
    assert rets[5:] == "101"
    # in the same boot the sender goes back to 570; after a reboot, to the `at` saved on flash
    rets, state, flash = _run(micropython_bin, tmp_path / "flash", keys,
                              [*plan, chunk(tid, 570, bundle[570:600]), *msgs[6:]])
    assert state["st"] == "ready"
    _slot_matches(flash, firmware)
    rets, state, flash = _run(micropython_bin, tmp_path, keys, [None, *msgs])
    assert state["st"] == "ready"
    _slot_matches(flash, firmware)


@pytest.mark.parametrize(("fails", "why"), [("28:300", "no_space"), ("5:300", "flash"), ("28:-1", "no_space"),
                                             ("5:-1", "flash")])
def test_a_flash_that_fills_up_or_fails_refuses_the_transfer_saying_which(
        micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path, fails: str, why: str) -> None:
    # ERRNO:300: the writes fail once 300 bytes went (inside the head); ERRNO:-1: sen_ota.bin
    # cannot even be opened (the first chunk)
    msgs = _msgs(_bundle(keys, firmware, tmp_path))
    rets, state, _ = _run(micropython_bin, tmp_path, keys, msgs[:40], flash_fails=fails)
    assert (state["st"], state.get("why")) == ("refused", why), state
    assert "1" in rets  # the refusal is published (the status carries it)


def _refused(micropython_bin: str, tmp_path: Path, keys: Path | None, bundle: bytes, why: str,
             **kw: Any) -> None:
    _, state, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle), **kw)
    assert (state["st"], state.get("why")) == ("refused", why), state
    assert "try" not in json.loads((flash / "sen_slot.json").read_text() if (flash / "sen_slot.json").exists()
                                   else "{}")  # nothing goes on trial: the old version runs on
    assert not (flash / "app_a").exists() and not (flash / "sen_ota.bin").exists()


def test_a_bad_signature_is_refused_before_any_file_byte(micropython_bin: str, tmp_path: Path, keys: Path,
                                                         firmware: Path) -> None:
    bundle = bytearray(_bundle(keys, firmware, tmp_path))
    bundle[20] ^= 1
    _refused(micropython_bin, tmp_path, keys, bytes(bundle), "bad_signature")


def test_a_board_without_a_key_refuses_every_bundle(micropython_bin: str, tmp_path: Path, keys: Path,
                                                    firmware: Path) -> None:
    _refused(micropython_bin, tmp_path, None, _bundle(keys, firmware, tmp_path), "no_key")


def test_a_different_key_is_refused(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    ota_keys.keygen(tmp_path / "other")
    bundle = _bundle(tmp_path / "other", firmware, tmp_path)
    _refused(micropython_bin, tmp_path, keys, bundle, "other_key")


def test_a_wrong_board_profile_is_refused(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    bundle = _bundle(keys, firmware, tmp_path, boards=["yolo-uno"])
    _refused(micropython_bin, tmp_path, keys, bundle, "wrong_board")


def test_a_downgrade_is_refused_unless_signed_for_one(micropython_bin: str, tmp_path: Path, keys: Path,
                                                      firmware: Path) -> None:
    _refused(micropython_bin, tmp_path, keys, _bundle(keys, firmware, tmp_path), "downgrade", running="1.5.0")
    (tmp_path / "again").mkdir()
    _, state, _ = _run(micropython_bin, tmp_path / "again", keys,
                       _msgs(_bundle(keys, firmware, tmp_path, downgrade=True)), running="2.0.0")
    assert state["st"] == "ready"


def test_a_changed_file_is_refused(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    bundle = bytearray(_bundle(keys, firmware, tmp_path))
    bundle[-5] ^= 0x20
    _refused(micropython_bin, tmp_path, keys, bytes(bundle), "file_changed")


# Runs inside MicroPython after a transfer: argv = lib dir, flash dir, then steps: "pick" (boot.py
# picks a slot: otaslot.pick, its reference), "confirm", "status" (the boot step's view of the
# transfer, as after a reboot). Prints one line per step.
_SLOTS = """
import sys, os
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
import otaboot, otaslot
for step in sys.argv[3:]:
    if step == "pick":
        print("pick", otaslot.pick()[0] or "-")
    elif step == "confirm":
        print("confirm", otaslot.confirm())
    else:
        cfg = {"board": "sim"}
        otaboot.boot(cfg)
        print("status", cfg["ota"]["st"], cfg["ota"].get("why", "-"), cfg["ver"], cfg["trial"])
"""


def _slots(micropython_bin: str, tmp_path: Path, flash: Path, *steps: str) -> list[str]:
    script = tmp_path / "slots.py"
    script.write_text(_SLOTS)
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", str(script), str(LIB), str(flash), *steps],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_a_trial_that_confirms_becomes_the_active_slot(micropython_bin: str, tmp_path: Path, keys: Path,
                                                       firmware: Path) -> None:
    _, _, flash = _run(micropython_bin, tmp_path, keys, _msgs(_bundle(keys, firmware, tmp_path)))
    out = _slots(micropython_bin, tmp_path, flash, "pick", "status", "confirm", "pick", "status")
    assert out == ["pick app_a", "status trial - 1.5.0 True", "confirm True", "pick app_a",
                   "status done - 1.5.0 False"]
    assert json.loads((flash / "sen_slot.json").read_text()) == {"active": "a", "ver": "1.5.0"}


def test_a_trial_that_never_confirms_is_rolled_back(micropython_bin: str, tmp_path: Path, keys: Path,
                                                    firmware: Path) -> None:
    # a version that hangs, or runs but never gets its ack, never calls confirm: its three
    # boots are used up and the fourth starts the old version (the root's)
    _, _, flash = _run(micropython_bin, tmp_path, keys, _msgs(_bundle(keys, firmware, tmp_path)))
    out = _slots(micropython_bin, tmp_path, flash, "pick", "pick", "pick", "pick", "pick", "status")
    assert out == ["pick app_a", "pick app_a", "pick app_a", "pick -", "pick -",
                   "status rolled_back trial_failed 0 False"]


def test_the_real_firmware_goes_through_in_1_kib_chunks(micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    bundle = _bundle(keys, ota.FIRMWARE_DIR, tmp_path, mpy=True, mpy_cross=ota.find_mpy_cross())
    _, state, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle, 1024), piece=128)
    assert state["st"] == "ready" and state["at"] == len(bundle)
    manifest = ota.verify(bundle, ota_keys.load_pub(keys / "ota.pub"))
    for f in manifest["files"]:
        assert (flash / "app_a" / f["path"]).stat().st_size == f["size"], f["path"]
