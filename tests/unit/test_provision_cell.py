"""`sen provision --transport cellular`: a cellular board's config.json — its APN (a preset for
Vietnam's networks, or given), its modem, and on a real board the GPIOs its modem is wired to —
checked here and by the firmware's own checkers (config.py, cellcfg.py) on the unix port."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import build_parser
from hardware import cellpower
from hardware.boards import MCUS, load_board
from hardware.provision import APN_PRESETS, MODEM_UARTS, MODEMS, Cell, ProvisionError, build_config, firmware_check

WIRED = {"tx": 17, "rx": 18, "pwrkey": 16}  # free GPIOs on the Yolo UNO (its profile uses 1-6, 11, 12)
LILYGO = "lilygo-t-sim7080g-s3"  # its modem's wiring is in its profile (hardware/board_modem.py)
LILYGO_CELL = {"modem": "sim7080", "mode": "mqtt", "apn_preset": "viettel", "uart": 1, "tx": 5, "rx": 4,
               "baud": 115200, "pwrkey": 41, "pwrkey_active": 1, "pmu": {"chip": "axp2101", "sda": 15, "scl": 7}}


def _config(board: str, cell: Cell) -> dict[str, Any]:
    return build_config(load_board(board), site="farm", device_id="pond-1", broker_host="10.0.0.2",
                        broker_port=1883, transport="cellular", cell=cell)


def test_a_yolo_uno_with_a_sim7080g_on_viettel_passes_the_firmware_checkers(micropython_bin: str) -> None:
    config = _config("yolo-uno", Cell(apn_preset="viettel", **WIRED))
    assert config["cell"] == {"modem": "sim7080", "mode": "mqtt", "apn_preset": "viettel", "uart": 1, "tx": 17,
                              "rx": 18, "baud": 115200, "pwrkey": 16, "pwrkey_active": 1}
    assert "wifi" not in config
    assert firmware_check(config, micropython_bin) is None


def test_a_virtual_board_needs_no_pins_and_an_apn_of_its_own_is_kept(micropython_bin: str) -> None:
    config = _config("sim", Cell(modem="a76xx", apn="m3-world", user="mms", password="mms"))
    assert config["cell"] == {"modem": "a76xx", "mode": "mqtt", "apn": "m3-world", "user": "mms", "password": "mms"}
    assert firmware_check(config, micropython_bin) is None


def test_a_lilygo_t_sim7080g_s3_needs_no_wiring_flags_and_passes_the_firmware_checkers(micropython_bin: str) -> None:
    config = _config(LILYGO, Cell(apn_preset="viettel"))
    assert config["cell"] == LILYGO_CELL  # the profile's modem, with its power manager (the firmware's cell.pmu)
    assert config["sensors"] == [] and "wifi" not in config
    assert firmware_check(config, micropython_bin) is None


def test_a_flag_given_wins_over_the_profile_s_wiring_and_is_still_checked() -> None:
    cell = _config(LILYGO, Cell(apn_preset="viettel", tx=17, pwrkey_active=0))["cell"]
    assert (cell["uart"], cell["tx"], cell["rx"], cell["pwrkey"], cell["pwrkey_active"]) == (1, 17, 4, 41, 0)
    assert _config(LILYGO, Cell(apn_preset="viettel", modem="a76xx"))["cell"]["modem"] == "a76xx"
    with pytest.raises(ProvisionError, match="--modem-tx 15: GPIO 15 is already used .* 'modem.pmu.sda'"):
        _config(LILYGO, Cell(apn_preset="viettel", tx=15))  # the power manager's I2C bus
    with pytest.raises(ProvisionError, match="three different GPIOs"):
        _config(LILYGO, Cell(apn_preset="viettel", tx=4))  # the profile's rx
    assert "pmu" not in _config("yolo-uno", Cell(apn_preset="viettel", **WIRED))["cell"]


@pytest.mark.parametrize(("cell", "says"), [
    (Cell(**WIRED), "needs its APN"),
    (Cell(apn="x", apn_preset="viettel", **WIRED), "needs its APN"),
    (Cell(apn_preset="viettel", tx=17, rx=18), "give --modem-pwrkey"),
    (Cell(apn_preset="viettel", tx=17, rx=17, pwrkey=16), "three different GPIOs"),
    (Cell(apn_preset="viettel", tx=11, rx=18, pwrkey=16), "GPIO 11 is already used .* 'pins.i2c.sda'"),  # DHT20
    (Cell(apn_preset="viettel", tx=17, rx=18, pwrkey=4), "GPIO 4 is already used .* 'pins.onewire'"),  # 1-wire
    (Cell(apn_preset="viettel", tx=17, rx=18, pwrkey=23), "GPIO 23 is not usable"),  # not on an ESP32-S3
    (Cell(apn_preset="viettel", tx=17, rx=99, pwrkey=16), "--modem-rx 99: GPIO 99 is not usable"),
    (Cell(apn_preset="viettel", uart=0, **WIRED), "--modem-uart 0: the modem needs UART 1 or 2 .*console"),
    (Cell(apn_preset="viettel", uart=7, **WIRED), "--modem-uart 7: the modem needs UART 1 or 2"),
])
def test_what_would_not_work_is_refused_naming_the_fix(cell: Cell, says: str) -> None:
    with pytest.raises(ProvisionError, match=says):
        _config("yolo-uno", cell)


def test_the_firmware_checker_refuses_what_it_would_stop_on(micropython_bin: str) -> None:
    config = _config("sim", Cell(apn_preset="viettel"))
    config["cell"]["mode"] = "csd"  # as if edited by hand
    assert "cell.mode" in (firmware_check(config, micropython_bin) or "")


def test_the_command_writes_it(tmp_path: Path) -> None:
    out = tmp_path / "pond-1.json"
    base = [sys.executable, "-m", "gateway", "provision", "--board", "yolo-uno", "--site", "farm", "--device",
            "pond-1", "--broker", "10.0.0.2", "--transport", "cellular", "--modem", "a76xx", "--out", str(out)]
    done = subprocess.run([*base, "--apn-preset", "mobifone", "--modem-tx", "17", "--modem-rx", "18",
                           "--modem-pwrkey", "16"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    cell = json.loads(out.read_text())["cell"]
    assert (cell["modem"], cell["apn_preset"], cell["tx"]) == ("a76xx", "mobifone", 17)
    refused = subprocess.run([*base, "--apn-preset", "mobifone"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert refused.returncode != 0 and "--modem-tx, --modem-rx, --modem-pwrkey" in refused.stderr, refused.stderr


def test_a_flag_given_at_the_default_s_value_still_wins_over_the_profile(tmp_path: Path) -> None:
    doc = json.loads(load_board(LILYGO).path.read_text())
    doc["modem"].update(family="a76xx", uart=2, pwrkey_active=0)
    path = tmp_path / f"{LILYGO}.json"
    path.write_text(json.dumps(doc))

    def cell(**given: Any) -> dict[str, Any]:
        return build_config(load_board(path), site="farm", device_id="p", broker_host="h", broker_port=1883,
                            transport="cellular", cell=Cell(apn_preset="viettel", **given))["cell"]
    assert (cell()["modem"], cell()["uart"], cell()["pwrkey_active"]) == ("a76xx", 2, 0)  # the profile's
    given = cell(modem="sim7080", uart=1, pwrkey_active=1)  # each the value a flag left out would have had
    assert (given["modem"], given["uart"], given["pwrkey_active"]) == ("sim7080", 1, 1)


def test_the_command_takes_a_lilygo_s_wiring_from_its_profile(tmp_path: Path) -> None:
    out = tmp_path / "paddy-1.json"
    base = [sys.executable, "-m", "gateway", "provision", "--board", LILYGO, "--site", "farm", "--device", "paddy-1",
            "--broker", "10.0.0.2", "--transport", "cellular", "--apn-preset", "viettel", "--out", str(out)]
    for extra, cell in (([], LILYGO_CELL), (["--modem-rx", "6"], {**LILYGO_CELL, "rx": 6})):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert json.loads(out.read_text())["cell"] == cell


def test_the_presets_and_modems_offered_are_the_firmware_s(micropython_bin: str) -> None:
    """provision's lists are the host's copy of what the firmware knows (it runs MicroPython):
    the APN presets of cellcfg.APN, one modem family per cellup_<family>.py; `sen provision`'s
    --apn-preset and --modem offer the same (spelled out there: the command line does not import
    hardware.provision until a provision runs)."""
    lib = Path(__file__).resolve().parents[2] / "firmware" / "lib"
    code = f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport cellcfg\nprint(' '.join(sorted(cellcfg.APN)))\n"
    done = subprocess.run([micropython_bin, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.split() == sorted(APN_PRESETS)
    assert sorted(p.stem.removeprefix("cellup_") for p in lib.glob("cellup_*.py")) == sorted(MODEMS)
    commands = next(a for a in build_parser()[0]._actions if isinstance(a, argparse._SubParsersAction))
    provision = commands.choices["provision"]
    offered = {a.dest: a.choices for a in provision._actions}
    assert sorted(offered["apn_preset"] or ()) == sorted(APN_PRESETS)
    assert sorted(offered["modem"] or ()) == sorted(MODEMS)


def test_every_mcu_has_its_modem_uarts() -> None:
    assert set(MODEM_UARTS) == {name for name in MCUS if name != "sim"}
    with pytest.raises(ProvisionError, match="--modem-uart 2: the modem needs UART 1 on"):  # a C3 has no UART2
        _config("esp32-c3-devkitm-1", Cell(apn_preset="viettel", uart=2, tx=5, rx=6, pwrkey=7))


@pytest.mark.parametrize(("tau", "active", "bits"), [
    ("1h", "10s", ("00100001", "00000101")),  # firmware/CELLULAR.md's example
    ("24h", "4m", ("00111000", "00100100")),  # "00100100" is 4 minutes in the modem manuals too
    ("2h30m", "60", ("00001111", "00100001")),
    ("320h", "0s", ("11000001", "00000000")),
    ("40m", "6m", ("00000100", "01000001")),
    ("40s", "2s", ("01110100", "00000001")),
])
def test_psm_said_in_words_becomes_the_timer_bytes(tau: str, active: str, bits: tuple[str, str]) -> None:
    assert cellpower.psm(tau, active) == {"tau": bits[0], "active": bits[1]}


@pytest.mark.parametrize(("args", "says"), [
    (("47m", "10s"), "--psm-tau 47m: the modem's timer cannot carry it; the nearest it can: 40m or 50m"),
    (("1h", "65s"), "--psm-active 65s: .* 62s or 2m"),
    (("1h", "1h"), "must be shorter than --psm-tau"),
    (("0s", "0s"), "--psm-tau must be longer than 0"),
    (("an hour", "10s"), "not a duration"),
    (("1h10", "10s"), "not a duration"),
    (("1h", "-1s"), "not a duration"),
])
def test_psm_the_modem_cannot_be_asked_for_is_refused_naming_the_nearest(args: tuple[str, str], says: str) -> None:
    with pytest.raises(ProvisionError, match=says):
        cellpower.psm(*args)


def test_edrx_is_a_cycle_of_the_table_on_its_network() -> None:
    assert cellpower.edrx("81.92") == {"act": 4, "value": "0101"}
    assert cellpower.edrx("10485.76s", "nbiot") == {"act": 5, "value": "1111"}
    with pytest.raises(ProvisionError, match=r"one of 5.12, .* 10485.76 s"):
        cellpower.edrx("80")
    with pytest.raises(ProvisionError, match="together"):
        cellpower.from_flags("cellular", "1h", None, None, None)
    with pytest.raises(ProvisionError, match="--transport cellular"):
        cellpower.from_flags("mqtt", None, None, "81.92", None)


def test_the_command_writes_power_saving_the_firmware_takes(tmp_path: Path, micropython_bin: str) -> None:
    out = tmp_path / "paddy-1.json"
    base = [sys.executable, "-m", "gateway", "provision", "--board", "sim", "--site", "farm", "--device", "paddy-1",
            "--broker", "10.0.0.2", "--apn-preset", "viettel", "--out", str(out)]
    done = subprocess.run([*base, "--transport", "cellular", "--psm-tau", "1h", "--psm-active", "10s", "--edrx",
                           "81.92"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    config = json.loads(out.read_text())
    assert config["cell"]["psm"] == {"tau": "00100001", "active": "00000101"}
    assert config["cell"]["edrx"] == {"act": 4, "value": "0101"}
    assert firmware_check(config, micropython_bin) is None
    refused = subprocess.run([*base, "--transport", "cellular", "--psm-tau", "47m", "--psm-active", "10s"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0 and "nearest it can: 40m or 50m" in refused.stderr, refused.stderr
