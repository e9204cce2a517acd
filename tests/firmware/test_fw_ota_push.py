"""`sen ota push` to boards over a real Mosquitto: each board is the firmware's own MQTT client
and OTA receiver (firmware/lib/mqtt.py, ota.py) on the real MicroPython VM, wired the way the
app is to wire them (DESIGN.md, OTA): the `ota` topic to Receiver.chunk, a retained status with
`ver` and `ota` whenever chunk() says so. Several boards at once; a board killed mid-transfer
(link and power gone) resumes from the `at` it saved; a refused bundle makes push exit 1."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fw_board import build_mpy

from gateway.ops import ota, ota_keys, ota_push

pytestmark = pytest.mark.firmware

LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"

# argv: lib dir (.mpy), host, port, site, device, public key hex, running version, flash dir (ends in /),
# board profile, mode: "stop" exits once the bundle is verified or refused; "confirm" then
# reboots into the trial and confirms it, "crash" uses the trial boots up (rolled back).
_BOARD = """
import sys, asyncio, binascii
sys.path.insert(0, sys.argv[1])
import mqtt, ota, otaslot
host, port, site, dev, pub, ver, root, board, mode = sys.argv[2:11]
r = ota.Receiver(binascii.unhexlify(pub), board, ver, "1.24.1", root)
base = "sen/v1/%s/%s/" % (site, dev)
c = mqtt.MQTTClient(dev, host, int(port), 30, base + "status", b'{"state":"offline"}', print)
c.subs = [base + "ota"]
flag = [True]
def on_message(topic, msg, retained):
    if topic.endswith("/ota") and r.chunk(msg):
        flag[0] = True
async def on_connect():
    flag[0] = True
c.on_message = on_message
c.on_connect = on_connect
async def main():
    global r, ver, mode
    asyncio.create_task(c.run())
    while True:
        if flag[0] and c.connected:
            flag[0] = False
            await c.publish(base + "status", ('{"state":"online","ver":"%s"%s}' % (ver, r.status())).encode(), 1, True)
            if r.st and r.st["st"] in ("ready", "refused", "done", "rolled_back"):
                await c.wait_idle()
                print("OTA", r.st["st"])
                if r.st["st"] != "ready" or mode == "stop":
                    return
                # what the app and boot.py are to do: reboot into the trial slot; then either
                # confirm it (first ack in time) or, crashing, use its trial boots up
                for i in range(1 if mode == "confirm" else 4):
                    otaslot.pick(root)
                if mode == "confirm":
                    otaslot.confirm(root)
                ver = otaslot.slots(root).get("ver", ver) if mode == "confirm" else ver
                r = ota.Receiver(r.pub, board, ver, "1.24.1", root)
                mode = "stop"
                flag[0] = True
        await asyncio.sleep_ms(10)
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    ota_keys.keygen(out)
    return out


def _board(micropython_bin: str, mosquitto: Any, tmp_path: Path, keys: Path, device: str,
           board: str = "sim", mode: str = "stop") -> tuple[subprocess.Popen[str], Path]:
    flash = tmp_path / device
    flash.mkdir(exist_ok=True)
    script = tmp_path / "board.py"
    script.write_text(_BOARD)
    lib = build_mpy(micropython_bin, LIB.parents[1])  # precompiled, as a board runs them
    proc = subprocess.Popen([micropython_bin, "-X", "heapsize=64K", str(script), str(lib), mosquitto.host,
                             str(mosquitto.port), "otatest", device, ota_keys.load_pub(keys / "ota.pub").hex(),
                             "1.4.0", f"{flash}/", board, mode], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    return proc, flash


def _end(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    """The board's exit code and console; killed when it has not ended within timeout."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def _bundle(keys: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "app.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.5.0", boards=["sim"], out=out, mpy=True,
              mpy_cross=ota.find_mpy_cross())
    return out.read_bytes()


def _push(mosquitto: Any, bundle: bytes, devices: list[str], **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    rc = ota_push.push(bundle, [ota_push.Target("otatest", d) for d in devices], host=mosquitto.host,
                       port=mosquitto.port, out=out, **{"timeout_s": 60.0, "stall_s": 1.0, **kw})
    return rc, out.getvalue()


def _landed(flash: Path, bundle: bytes, keys: Path) -> None:
    manifest = ota.verify(bundle, ota_keys.load_pub(keys / "ota.pub"))
    at = ota.HEAD + ota.manifest_length(bundle[:12])
    for f in manifest["files"]:
        assert (flash / "app_a" / f["path"]).read_bytes() == bundle[at:at + f["size"]], f["path"]
        at += f["size"]
    assert json.loads((flash / "sen_slot.json").read_text())["try"] == "a"


def test_push_updates_several_boards(mosquitto: Any, micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    bundle = _bundle(keys, tmp_path)
    boards = [_board(micropython_bin, mosquitto, tmp_path, keys, f"ota-{i}") for i in range(3)]
    try:
        rc, text = _push(mosquitto, bundle, [f"ota-{i}" for i in range(3)], chunk_size=1024)
    finally:
        ends = [_end(proc) for proc, _ in boards]
    assert rc == 0, text
    for i, (code, console) in enumerate(ends):
        assert code == 0 and "OTA ready" in console, console
        assert f"otatest/ota-{i}: ok: 1.5.0 verified on the board" in text
        _landed(boards[i][1], bundle, keys)
    assert "B recv" in text  # the progress lines


def test_a_board_cut_off_mid_transfer_resumes(mosquitto: Any, micropython_bin: str, tmp_path: Path,
                                              keys: Path) -> None:
    bundle = _bundle(keys, tmp_path)
    proc, flash = _board(micropython_bin, mosquitto, tmp_path, keys, "ota-cut")
    # the board dies (power and link) once it has saved some progress, and comes back later
    deadline = time.monotonic() + 30

    def killer() -> None:
        while time.monotonic() < deadline:
            state = flash / "sen_ota.json"
            if state.exists() and json.loads(state.read_text() or "{}").get("at", 0) > len(bundle) // 3:
                proc.kill()
                return
            time.sleep(0.01)

    import threading

    cut = threading.Thread(target=killer)
    cut.start()

    def restart() -> None:
        cut.join()
        time.sleep(1.5)
        restarted.append(_board(micropython_bin, mosquitto, tmp_path, keys, "ota-cut")[0])

    restarted: list[subprocess.Popen[str]] = []
    again = threading.Thread(target=restart)
    again.start()
    try:
        rc, text = _push(mosquitto, bundle, ["ota-cut"], chunk_size=512, window=8)
        again.join()
    finally:
        first = _end(proc, 5)
        ends = [_end(p) for p in restarted]
    assert rc == 0, text
    assert first[0] != 0 and "OTA ready" not in first[1]  # killed mid-transfer
    assert ends and ends[0][0] == 0 and "OTA ready" in ends[0][1], ends
    _landed(flash, bundle, keys)


def test_a_refused_bundle_fails_the_push(mosquitto: Any, micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    bundle = _bundle(keys, tmp_path)
    proc, flash = _board(micropython_bin, mosquitto, tmp_path, keys, "ota-yolo", board="yolo-uno")
    try:
        rc, text = _push(mosquitto, bundle, ["ota-yolo"])
    finally:
        code, console = _end(proc)
    assert code == 0 and "OTA refused" in console, console
    assert rc == 1
    assert "otatest/ota-yolo: failed: refused (wrong_board)" in text
    assert not (flash / "sen_slot.json").exists()


def test_wait_returns_when_the_boards_run_it_and_fails_on_a_rollback(mosquitto: Any, micropython_bin: str,
                                                                      tmp_path: Path, keys: Path) -> None:
    bundle = _bundle(keys, tmp_path)
    good = _board(micropython_bin, mosquitto, tmp_path, keys, "ota-good", mode="confirm")
    bad = _board(micropython_bin, mosquitto, tmp_path, keys, "ota-bad", mode="crash")
    try:
        rc, text = _push(mosquitto, bundle, ["ota-good", "ota-bad"], wait=True)
    finally:
        ends = [_end(good[0]), _end(bad[0])]
    assert [code for code, _ in ends] == [0, 0], ends
    assert rc == 1, text
    assert "otatest/ota-good: ok: runs 1.5.0" in text
    assert "otatest/ota-bad: failed: rolled_back (trial_failed)" in text


def test_a_failed_canary_stops_the_rollout(mosquitto: Any, micropython_bin: str, tmp_path: Path,
                                           keys: Path) -> None:
    bundle = _bundle(keys, tmp_path)
    canary = _board(micropython_bin, mosquitto, tmp_path, keys, "ota-canary", mode="crash")
    out = io.StringIO()
    try:
        rc = ota_push.rollout(bundle, [ota_push.Target("otatest", d) for d in ("ota-canary", "ota-rest")], canary=1,
                              host=mosquitto.host, port=mosquitto.port, out=out, timeout_s=60.0, stall_s=1.0)
    finally:
        _end(canary[0])
    assert rc == 1
    assert "ota-canary: failed: rolled_back" in out.getvalue()
    assert "a canary failed: 1 boards left as they are" in out.getvalue()
    assert "ota-rest" not in out.getvalue().split("canary: ")[1].split("\n", 1)[1]
