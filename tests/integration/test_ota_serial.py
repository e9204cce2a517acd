"""OTA to a USB serial board, on real parts: a virtual board (the real firmware, boot.py and its
slots, on the MicroPython VM) on a pseudo-terminal → `sen gateway run --serial ... --mqtt ...`
→ InfluxDB 1.x, updated by `sen ota push --wait` through Mosquitto: the gateway forwards the
`ota` messages to the board's port as SEN1 frames and publishes the board's status frames
(DESIGN.md, OTA). The board's power is cut (kill -9, its USB link gone with it) once a third of
the bundle is in; it comes back, the transfer goes on from where the board stands, the board takes
1.5.0, reboots into it, confirms it, and every reading of every boot lands exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from gateway.ops import ota, ota_keys, ota_push
from hardware.vboard import VirtualBoard, build_mpy
from tests.firmware.ota_fixtures import keys
from tests.integration.helpers import sen_process, stop, wait_for
from tests.integration.test_ota_e2e import _exactly_once, _logged, _rows, _settled, cut_a_third_in

pytestmark = [pytest.mark.integration, pytest.mark.firmware]
__all__ = ["keys"]  # the fixture (tests/firmware/ota_fixtures.py)

SITE = "otausb"
DEVICE = "usb-ota"


def test_sen_ota_push_updates_a_serial_board_through_the_gateway(
    mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path, micropython_bin: str, keys: Path,
) -> None:
    bundle = tmp_path / "good.senota"
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.5.0", boards=["sim"], out=bundle, mpy=True,
              mpy_cross=ota.find_mpy_cross())
    log = tmp_path / "gateway.log"
    gateway = sen_process("gateway", "run", "--mqtt", mosquitto.url, "--influx", influxdb.url,
                          "--database", influx_db, "--spool", str(tmp_path / "spool"),
                          "--client-id", f"otausb-{influx_db}", "--serial", str(tmp_path / "dev" / "ttySIM*"), log=log)
    config = {"site": SITE, "device_id": DEVICE, "board": "sim", "transport": "serial", "ack": "e2e",
              "ack_timeout_ms": 2000, "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive": 30},
              "interval_ms": 250, "batch_max": 4, "sim": {"seed": 5}, "sensors": [{"type": "sht31", "addr": 0x44}],
              "ota": {"pub": ota_keys.load_pub(keys / "ota.pub").hex(), "trial_ms": 4000}}
    board = VirtualBoard(device=DEVICE, flash_dir=tmp_path / DEVICE, config=config, micropython=micropython_bin,
                         mpy_dir=build_mpy(tmp_path / "mpy", micropython_bin), serial_link=tmp_path / "dev" / "ttySIM0")
    exits: list[int] = []
    cut_at: list[int] = []
    done = threading.Event()
    size = bundle.stat().st_size

    def follow() -> None:  # the board's reboots (for the update, into its trial), and one power cut
        while not done.wait(0.05):
            code = board.poll()
            if code is not None and board.process is not None:
                exits.append(code)
                board.process = None
            if not cut_at and (at := cut_a_third_in(board, size)):  # a third in: the cable is pulled
                cut_at.append(at)

    follower = threading.Thread(target=follow, daemon=True)
    push = None
    try:
        wait_for(lambda: "subscribed to sen/v1/+/+/ota" in log.read_text(), timeout=30, what="the ota subscription")
        board.start()
        follower.start()
        wait_for(lambda: _rows(influxdb, influx_db, DEVICE), timeout=20, what="readings before the update")
        push = sen_process("ota", "push", "--bundle", str(bundle), "--device", DEVICE, "--site", SITE,
                           "--mqtt", mosquitto.url, "--wait", "--timeout", "30", "--stall", "3",
                           log=tmp_path / "push.log")
        code = push.wait(timeout=40)
        out = (tmp_path / "push.log").read_text()
        assert code == 0, out + log.read_text()[-3000:] + board.console_log.read_text()[-3000:]
        assert f"{SITE}/{DEVICE}: ok: runs 1.5.0" in out, out
        assert cut_at, "the board's power was never cut mid-transfer"
        doc = ota_push.statuses(mosquitto.host, mosquitto.port, site=SITE)[f"{SITE}/{DEVICE}"]
        assert (doc["ver"], doc["ota"]["st"]) == ("1.5.0", "done"), doc
        count = len(_rows(influxdb, influx_db, DEVICE))
        wait_for(lambda: len(_rows(influxdb, influx_db, DEVICE)) > count + 4, timeout=15,
                 what="readings after the update")
        try:
            wait_for(lambda: _settled(influxdb, influx_db, DEVICE, board.console_log.read_text()), timeout=15,
                     what="each boot's readings, once")
        except AssertionError:  # say why
            _exactly_once(influxdb, influx_db, DEVICE, board.console_log.read_text())
            raise
    finally:
        if push is not None:
            stop(push)
        done.set()
        if follower.is_alive():
            follower.join()
        board.stop()
        gateway_code = stop(gateway, timeout=30)
    assert gateway_code == 0, log.read_text()
    assert exits == [], exits
    console = board.console_log.read_text()
    by_boot = _exactly_once(influxdb, influx_db, DEVICE, console)
    assert len(by_boot) >= 2 and _logged(console), sorted(by_boot)  # sampled before and after the update
    assert "Traceback" not in log.read_text()
