"""The board's OTA receiver (firmware/lib/ota.py) on the real MicroPython VM at -X heapsize=64K,
fed the chunks of a bundle `sen ota build` made (DESIGN.md, OTA): the files land in the
inactive slot byte for byte and the slot is marked for trial; a transfer resumes after a
reboot; and a bad signature, a different key, a wrong board profile, a changed file, a
downgrade and a truncated chunk are each refused with the reason code, the old version
untouched (no trial marked; a refused signature leaves no file in the slot)."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.ops import ota, ota_keys
from gateway.ops.ota_push import chunk, chunks, transfer_id

pytestmark = pytest.mark.firmware

LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"

# Runs inside MicroPython: argv = lib dir, flash dir (ends in /), public key hex, board,
# running version, plan file (records: op u8, length u32, payload; op 1 = a message of the ota
# topic, op 2 = a reboot). Prints the return of every chunk() as a string of 0/1, then STATUS.
_SCRIPT = """
import sys, binascii, struct
sys.path.insert(0, sys.argv[1])
import ota
root, pub, board, running = sys.argv[2], binascii.unhexlify(sys.argv[3]), sys.argv[4], sys.argv[5]
def new():
    return ota.Receiver(pub, board, running, "1.24.1", root)
r = new()
rets = bytearray()  # one byte per step: small, for thousands of chunks
with open(sys.argv[6], "rb") as f:
    hdr = bytearray(5)
    while f.readinto(hdr) == 5:
        op, n = struct.unpack(">BI", hdr)
        msg = f.read(n)
        if op == 2:
            r = None
            r = new()
            rets.append(82)  # R
        else:
            rets.append(49 if r.chunk(memoryview(msg)) else 48)
print("RETS", rets.decode())
print("STATUS", r.status())
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    ota_keys.keygen(out)
    return out


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("firmware")
    (root / "lib").mkdir()
    (root / "boot.py").write_text("import gc\n")
    (root / "main.py").write_text("import app\n")
    (root / "lib" / "app.py").write_text("".join(f"X{i} = {i * 7919}\n" for i in range(300)))
    (root / "lib" / "empty.py").write_text("")
    (root / "lib" / "log.py").write_text("def line(s):\n    print(s)\n" * 20)
    return root


def _bundle(keys: Path, firmware: Path, tmp_path: Path, **over: Any) -> bytes:
    args: dict[str, Any] = {"version": "1.5.0", "boards": ["sim"], "firmware_dir": firmware}
    args.update(over)
    out = tmp_path / "b.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), out=out, **args)
    return out.read_bytes()


def _run(micropython_bin: str, tmp_path: Path, keys: Path, plan: Sequence[bytes | None], *, board: str = "sim",
         running: str = "1.4.0") -> tuple[str, dict[str, Any], Path]:
    flash = tmp_path / "flash"
    flash.mkdir(exist_ok=True)
    script, plan_file = tmp_path / "run.py", tmp_path / "plan.bin"
    script.write_text(_SCRIPT)
    with open(plan_file, "wb") as f:
        for msg in plan:
            f.write(struct.pack(">BI", 2, 0) if msg is None else struct.pack(">BI", 1, len(msg)) + msg)
    pub = ota_keys.load_pub(keys / "ota.pub").hex()
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", str(script), str(LIB), f"{flash}/", pub, board,
                           running, str(plan_file)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("RETS", "STATUS")))
    status = json.loads("{" + lines["STATUS"].lstrip(",") + "}")["ota"] if lines["STATUS"] else {}
    return lines["RETS"], status, flash


def _msgs(bundle: bytes, size: int = 100) -> list[bytes]:
    return [m for _, m in chunks(bundle, size)]


def _slot_matches(flash: Path, firmware: Path, slot: str = "a") -> None:
    for rel in ("main.py", "lib/app.py", "lib/empty.py", "lib/log.py"):
        assert (flash / f"app_{slot}" / rel).read_bytes() == (firmware / rel).read_bytes(), rel
    assert not (flash / f"app_{slot}" / "boot.py").exists()
    assert not (flash / f"app_{slot}" / "ota_head.bin").exists()


@pytest.mark.parametrize("size", [7, 100, 2048])
def test_a_bundle_lands_in_the_inactive_slot_and_goes_on_trial(micropython_bin: str, tmp_path: Path, keys: Path,
                                                               firmware: Path, size: int) -> None:
    # 7 B: the header, signature and manifest in many pieces; 2048 B: the whole head and the
    # first files in one chunk
    bundle = _bundle(keys, firmware, tmp_path)
    rets, status, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle, size))
    assert status == {"id": transfer_id(bundle).hex(), "ver": "1.5.0", "st": "ready", "at": len(bundle),
                      "of": len(bundle)}
    assert rets.endswith("1")
    _slot_matches(flash, firmware)
    assert json.loads((flash / "sen_slot.json").read_text()) == {"active": "", "try": "a", "left": 3, "ver": "1.5.0"}


def test_a_transfer_resumes_after_a_reboot(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    bundle = _bundle(keys, firmware, tmp_path)
    msgs = _msgs(bundle, 64)
    half = len(msgs) // 2 + 3
    # the link drops mid-transfer, the board reboots; the sender resends everything (duplicates
    # are dropped) after a gap (a chunk far ahead is answered, not taken)
    plan: list[bytes | None] = [*msgs[:half], None, msgs[-1], *msgs]
    rets, status, flash = _run(micropython_bin, tmp_path, keys, plan)
    assert status["st"] == "ready" and status["at"] == len(bundle)
    assert rets[half] == "R" and rets[half + 1] == "1"  # the gap asks for `at`
    _slot_matches(flash, firmware)


def test_a_truncated_chunk_is_refused_and_the_transfer_goes_on(micropython_bin: str, tmp_path: Path, keys: Path,
                                                               firmware: Path) -> None:
    bundle = _bundle(keys, firmware, tmp_path)
    msgs = _msgs(bundle)
    tid = transfer_id(bundle)
    # a message cut inside its header is refused (bad_chunk, `at` stays); a chunk cut short
    # is taken for what it holds, and the next one is then a gap, answered with `at`
    cut = msgs[5][:len(msgs[5]) - 30]
    plan: list[bytes | None] = [*msgs[:5], msgs[5][:9], cut, msgs[6]]
    rets, status, _ = _run(micropython_bin, tmp_path, keys, plan)
    assert status["st"] == "recv" and status["why"] == "bad_chunk" and status["at"] == 570
    assert rets[5:] == "101"
    # in the same boot the sender goes back to 570; after a reboot, to the `at` saved on flash
    rets, status, flash = _run(micropython_bin, tmp_path / "flash", keys,
                               [*plan, chunk(tid, 570, bundle[570:600]), *msgs[6:]])
    assert status["st"] == "ready"
    _slot_matches(flash, firmware)
    rets, status, flash = _run(micropython_bin, tmp_path, keys, [None, *msgs])
    assert status["st"] == "ready"
    _slot_matches(flash, firmware)


def _refused(micropython_bin: str, tmp_path: Path, keys: Path, bundle: bytes, why: str, **kw: str) -> None:
    _, status, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle), **kw)
    assert (status["st"], status.get("why")) == ("refused", why), status
    assert not (flash / "sen_slot.json").exists()  # nothing goes on trial: the old version runs on
    assert not (flash / "app_a").exists()


def test_a_bad_signature_is_refused_before_any_file_byte(micropython_bin: str, tmp_path: Path, keys: Path,
                                                         firmware: Path) -> None:
    bundle = bytearray(_bundle(keys, firmware, tmp_path))
    bundle[20] ^= 1
    _refused(micropython_bin, tmp_path, keys, bytes(bundle), "bad_signature")


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
    _, status, _ = _run(micropython_bin, tmp_path / "again", keys,
                        _msgs(_bundle(keys, firmware, tmp_path, downgrade=True)), running="2.0.0")
    assert status["st"] == "ready"


def test_a_changed_file_is_refused(micropython_bin: str, tmp_path: Path, keys: Path, firmware: Path) -> None:
    bundle = bytearray(_bundle(keys, firmware, tmp_path))
    bundle[-5] ^= 0x20
    _refused(micropython_bin, tmp_path, keys, bytes(bundle), "file_changed")


# Runs inside MicroPython after a transfer: argv = lib dir, flash dir, then steps: "pick",
# "confirm", "status" (a new Receiver, as after a reboot). Prints one line per step.
_SLOTS = """
import sys
sys.path.insert(0, sys.argv[1])
import ota, otaslot
root = sys.argv[2]
for step in sys.argv[3:]:
    if step == "pick":
        print("pick", otaslot.pick(root)[len(root):] or "-")
    elif step == "confirm":
        print("confirm", otaslot.confirm(root))
    else:
        print("status", ota.Receiver(b"", "sim", "", "1.24.1", root).status())
"""


def _slots(micropython_bin: str, tmp_path: Path, flash: Path, *steps: str) -> list[str]:
    script = tmp_path / "slots.py"
    script.write_text(_SLOTS)
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", str(script), str(LIB), f"{flash}/", *steps],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_a_trial_that_confirms_becomes_the_active_slot(micropython_bin: str, tmp_path: Path, keys: Path,
                                                       firmware: Path) -> None:
    _, _, flash = _run(micropython_bin, tmp_path, keys, _msgs(_bundle(keys, firmware, tmp_path)))
    out = _slots(micropython_bin, tmp_path, flash, "status", "pick", "status", "confirm", "pick", "status")
    assert out[0].startswith('status ,"ota":{') and '"st":"trial"' in out[0]
    assert out[1:] == ["pick app_a", out[2], "confirm True", "pick app_a", out[5]]
    assert '"st":"trial"' in out[2] and '"st":"done"' in out[5]
    assert json.loads((flash / "sen_slot.json").read_text()) == {"active": "a", "ver": "1.5.0"}


def test_a_trial_that_never_confirms_is_rolled_back(micropython_bin: str, tmp_path: Path, keys: Path,
                                                    firmware: Path) -> None:
    # a version that crashes at import, or runs but never gets its ack, never calls confirm:
    # its three boots are used up and the fourth starts the old version (the root's)
    _, _, flash = _run(micropython_bin, tmp_path, keys, _msgs(_bundle(keys, firmware, tmp_path)))
    out = _slots(micropython_bin, tmp_path, flash, "pick", "pick", "pick", "pick", "pick", "status")
    assert out[:5] == ["pick app_a", "pick app_a", "pick app_a", "pick -", "pick -"]
    assert '"st":"rolled_back"' in out[5] and '"why":"trial_failed"' in out[5]


def test_the_real_firmware_goes_through_in_1_kib_chunks(micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    bundle = _bundle(keys, ota.FIRMWARE_DIR, tmp_path, mpy=True, mpy_cross=ota.find_mpy_cross())
    _, status, flash = _run(micropython_bin, tmp_path, keys, _msgs(bundle, 1024))
    assert status["st"] == "ready" and status["at"] == len(bundle)
    manifest = ota.verify(bundle, ota_keys.load_pub(keys / "ota.pub"))
    for f in manifest["files"]:
        assert (flash / "app_a" / f["path"]).stat().st_size == f["size"], f["path"]
