"""OTA end to end, on real parts: virtual boards (the real firmware, boot.py and its slots, on
the MicroPython VM) → Mosquitto → `sen gateway run` → InfluxDB 1.x, updated by `sen ota push
--wait` (DESIGN.md, OTA). Five boards at once, each a scenario:

- ota-good: takes 1.5.0, reboots into it, confirms it at its first end-to-end ack; a board of
  the default profile (three sensors, batches of 10) in a small heap, `-X heapsize=72K`: what
  this test checks is the update and every reading once, with room to spare on a loaded CI
  machine; how small a heap an update needs is measured, not asserted (firmware/README.md, OTA);
- ota-cut: the same, but its power is cut (kill -9) while the files come in: it resumes;
- ota-crash: a 1.6.0 that raises at import: rolled back at once (crashed);
- ota-noack: a 1.6.0 that runs but publishes its telemetry where no gateway listens, so no ack
  ever comes: its three trial boots used up, rolled back (trial_failed);
- ota-badsig: 1.5.0 with one byte of its signature changed: refused (bad_signature).

The push of each returns 0 only for the good ones, the old version keeps running on the others,
and every reading recorded before, during and after the updates lands exactly once in InfluxDB
by (device, boot, seq): each boot's seqs are 1..N with no hole and no twin, N the count the
board logged when it rebooted for the update."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from gateway.ops import ota, ota_keys, ota_push
from hardware.vboard import VirtualBoard, build_mpy
from tests.firmware.ota_fixtures import keys
from tests.integration.helpers import gateway_run, sen_process, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.firmware]
__all__ = ["keys"]  # the fixture (tests/firmware/ota_fixtures.py)

SITE = "otae2e"
DEVICES = ("ota-good", "ota-cut", "ota-crash", "ota-noack", "ota-badsig")
TRIAL_MS = 4000
SMALL_HEAP = "72K"  # ota-good's; at 65K a CI run lost the board to a MemoryError (firmware/README.md, OTA)


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of the firmware with one change in lib/app.py."""
    out = tmp_path / name
    shutil.copytree(ota.FIRMWARE_DIR, out, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    app = out / "lib" / "app.py"
    text = app.read_text()
    assert old in text
    app.write_text(text.replace(old, new, 1))
    return out


def _bundles(keys: Path, tmp_path: Path) -> dict[str, Path]:
    key = ota_keys.load_key(keys / "ota.key")
    cross = ota.find_mpy_cross()
    out = {}
    for name, version, firmware in (
            ("good", "1.5.0", ota.FIRMWARE_DIR),
            ("crash", "1.6.0", _variant(tmp_path, "crash", "import gc\n", "raise ImportError('broken')\nimport gc\n")),
            ("noack", "1.6.0", _variant(tmp_path, "noack", 'base + "telemetry"', 'base + "telemetrx"'))):
        out[name] = tmp_path / f"{name}.senota"
        ota.build(key, version=version, boards=["sim"], out=out[name], mpy=True, mpy_cross=cross, firmware_dir=firmware)
    bad = bytearray(out["good"].read_bytes())
    bad[20] ^= 1  # inside the signature
    out["badsig"] = tmp_path / "badsig.senota"
    out["badsig"].write_bytes(bytes(bad))
    return out


@pytest.fixture
def gateway(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> Any:
    yield from gateway_run(mosquitto.url, influxdb.url, influx_db, tmp_path, f"ota-{influx_db}")


class Boards:
    """The boards, and one thread that follows their reboots (VirtualBoard.poll) and cuts
    ota-cut's power once a third of its files have come in."""

    def __init__(self, boards: dict[str, VirtualBoard], bundle_size: int) -> None:
        self.boards, self.size = boards, bundle_size
        self.cut_at = 0
        self.exits: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        for board in self.boards.values():
            board.start()
        self._thread.start()

    def _run(self) -> None:
        cut = self.boards["ota-cut"]
        while not self._stop.is_set():
            for name, board in self.boards.items():
                code = board.poll()
                if code is not None and board.process is not None:
                    self.exits.append((name, code))  # a board that stopped: the test fails on it
                    board.process = None
            if not self.cut_at:
                self.cut_at = cut_a_third_in(cut, self.size)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for board in self.boards.values():
            board.stop()


def cut_a_third_in(board: VirtualBoard, size: int) -> int:
    """Cut BOARD's power for a second once over a third of a SIZE-byte bundle is on its flash
    (its sen_ota.json says so): the `at` it was cut at, or 0 (not that far yet)."""
    try:
        st = json.loads((board.flash_dir / "sen_ota.json").read_text())
    except (OSError, ValueError):
        return 0
    if not st.get("of") or st.get("at", 0) <= size // 3:
        return 0
    board.power_cut()
    time.sleep(1.0)
    board.start()
    return int(st["at"])


def _rows(influxdb: InfluxDB, db: str, device: str) -> list[dict[str, Any]]:
    return influxdb.rows(f"SELECT * FROM \"telemetry\" WHERE \"device\" = '{device}'", db)


def _logged(console: str) -> dict[int, int]:
    """boot -> readings it sampled, for the boots that ended in a reboot for an update."""
    return {int(b): int(n) for b, n in re.findall(r"rebooting.*\(boot (\d+) sampled (\d+) readings", console)}


def _exactly_once(influxdb: InfluxDB, db: str, device: str, console: str) -> dict[int, list[int]]:
    rows = _rows(influxdb, db, device)
    keys = [(r["boot"], r["seq"]) for r in rows]
    assert len(keys) == len(set(keys)), f"{device}: a reading landed twice"
    by_boot: dict[int, list[int]] = {}
    for boot, seq in sorted(keys):
        by_boot.setdefault(boot, []).append(seq)
    for boot, seqs in by_boot.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{device} boot {boot}: a hole in {seqs}"
    for boot, n in _logged(console).items():
        assert len(by_boot.get(boot, [])) == n, f"{device} boot {boot}: {n} sampled, {by_boot.get(boot)} landed"
    return by_boot


def test_ota_push_updates_boards_rolls_back_bad_versions_and_loses_no_reading(
    gateway: Any, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path,
    micropython_bin: str, keys: Path,
) -> None:
    bundles = _bundles(keys, tmp_path)
    pub = ota_keys.load_pub(keys / "ota.pub").hex()
    mpy = build_mpy(tmp_path / "mpy", micropython_bin)
    boards = {}
    for device in DEVICES:
        config = {"site": SITE, "device_id": device, "board": "sim", "ack": "e2e", "ack_timeout_ms": 2000,
                  "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive": 30},
                  "interval_ms": 250, "batch_max": 4, "sim": {"seed": 11},
                  "sensors": [{"type": "sht31", "addr": 0x44}], "ota": {"pub": pub, "trial_ms": TRIAL_MS}}
        if device == "ota-good":  # the default profile's sensors and batch, in a small heap
            del config["sensors"], config["batch_max"]
        boards[device] = VirtualBoard(device=device, flash_dir=tmp_path / device, config=config,
                                      micropython=micropython_bin, mpy_dir=mpy,
                                      heapsize=SMALL_HEAP if device == "ota-good" else None)
    fleet = Boards(boards, bundles["good"].stat().st_size)
    fleet.start()
    pushes = {}
    try:
        wait_for(lambda: all(_rows(influxdb, influx_db, d) for d in DEVICES), timeout=30,
                 what="readings of every board before the updates")
        common = ["--mqtt", mosquitto.url, "--site", SITE, "--wait", "--timeout", "150", "--stall", "3"]
        for name, devices in (("good", ("ota-good", "ota-cut")), ("crash", ("ota-crash",)),
                              ("noack", ("ota-noack",)), ("badsig", ("ota-badsig",))):
            args = [a for d in devices for a in ("--device", d)]
            pushes[name] = sen_process("ota", "push", "--bundle", str(bundles[name]), *args, *common,
                                       log=tmp_path / f"push-{name}.log")
        codes = {name: p.wait(timeout=170) for name, p in pushes.items()}
        out = {name: (tmp_path / f"push-{name}.log").read_text() for name in pushes}
        assert codes == {"good": 0, "crash": 1, "noack": 1, "badsig": 1}, out
        assert f"{SITE}/ota-good: ok: runs 1.5.0" in out["good"] and f"{SITE}/ota-cut: ok: runs 1.5.0" in out["good"]
        assert f"{SITE}/ota-crash: failed: rolled_back (crashed)" in out["crash"]
        assert f"{SITE}/ota-noack: failed: rolled_back (trial_failed)" in out["noack"]
        assert f"{SITE}/ota-badsig: failed: refused (bad_signature)" in out["badsig"]
        assert fleet.cut_at, "ota-cut's power was never cut mid-transfer"
        # every board runs, each the version it should, and sends on: the old one where the
        # update failed; what `sen ota status` shows
        seen = ota_push.statuses(mosquitto.host, mosquitto.port, site=SITE)
        want = {"ota-good": ("1.5.0", "done", None), "ota-cut": ("1.5.0", "done", None),
                "ota-crash": ("0", "rolled_back", "crashed"), "ota-noack": ("0", "rolled_back", "trial_failed"),
                "ota-badsig": ("0", "refused", "bad_signature")}
        for device, (ver, st, why) in want.items():
            doc = seen[f"{SITE}/{device}"]
            assert (doc["state"], doc["ver"], doc["ota"]["st"], doc["ota"].get("why")) == ("online", ver, st, why), doc
        counts = {d: len(_rows(influxdb, influx_db, d)) for d in DEVICES}
        wait_for(lambda: all(len(_rows(influxdb, influx_db, d)) > counts[d] + 4 for d in DEVICES), timeout=30,
                 what="readings of every board after the updates")
        # the readings each boot sampled, delivered once: before the update (boot 1), while the
        # files came (boot 2), after (the new version's boots, the trials' boots)
        for device, board in boards.items():
            try:
                wait_for(lambda d=device, b=board: _settled(influxdb, influx_db, d, b.console_log.read_text()),
                         timeout=30, what=f"{device}'s readings, each boot's once")
            except AssertionError:  # say why
                _exactly_once(influxdb, influx_db, device, board.console_log.read_text())
                raise
    finally:
        for p in pushes.values():
            stop(p)
        fleet.stop()
    assert fleet.exits == [], fleet.exits
    consoles = {d: b.console_log.read_text() for d, b in boards.items()}
    assert "the new version crashed (at import, or an error exit): rolled back" in consoles["ota-crash"]
    assert consoles["ota-noack"].count("no end-to-end ack within") == 3, consoles["ota-noack"][-3000:]
    assert "ota: refused (bad_signature)" in consoles["ota-badsig"]
    for device in DEVICES:
        by_boot = _exactly_once(influxdb, influx_db, device, consoles[device])
        assert len(by_boot) >= 2, (device, sorted(by_boot))
        if device in ("ota-good", "ota-cut", "ota-noack"):  # sampled before and after the update
            assert _logged(consoles[device]), device


def _settled(influxdb: InfluxDB, db: str, device: str, console: str) -> bool:
    try:
        _exactly_once(influxdb, db, device, console)
    except AssertionError:
        return False
    return True
