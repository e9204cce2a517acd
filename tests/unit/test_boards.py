"""Board profiles: every shipped profile loads; bad ones are refused naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hardware.boards import BoardError, board_ids, load_all, load_board


def test_every_shipped_profile_loads() -> None:
    ids = board_ids()
    assert {"esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "yolo-uno", "sim",
            "lilygo-t-sim7080g-s3"} <= set(ids)
    assert len(load_all()) == len(ids)


def test_facts() -> None:
    assert load_board("esp32-devkitc").flash_offset == 0x1000
    assert load_board("esp32-s3-devkitc-1").flash_offset == 0
    assert load_board("esp32-c3-devkitm-1").image == "ESP32_GENERIC_C3"
    yolo = load_board("yolo-uno")
    assert yolo.pins["i2c"] == {"bus": "soft", "sda": 11, "scl": 12, "freq": 100000}
    assert yolo.sensors == [{"type": "dht20", "addr": 0x38}] and yolo.chip == "esp32s3"
    assert ("303a", "1001") in yolo.usb_ids and ("10c4", "ea60") in load_board("esp32-devkitc").usb_ids


def _profile(tmp_path: Path, board: str = "yolo-uno", **changes: Any) -> Path:
    doc = json.loads(load_board(board).path.read_text())
    for dotted, value in changes.items():
        target = doc
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    path = tmp_path / f"{board}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(("change", "key"), [
    ({"pins__buzzer": 5}, "pins.buzzer"),
    ({"pins__onewire": 99}, "pins.onewire"),
    ({"pins__onewire": 23}, "pins.onewire"),            # no GPIO 23 on the S3
    ({"pins__onewire": 11}, "pins.onewire"),            # already SDA
    ({"pins__adc_vbat": {"pin": 20}}, "pins.adc_vbat.pin"),  # not on ADC1
    ({"pins__i2c__bus": 2}, "pins.i2c.bus"),
    ({"flash_offset": "0x1000"}, "flash_offset"),
    ({"image": "ESP32_GENERIC"}, "image"),
    ({"mcu": "esp8266"}, "mcu"),
    ({"sensors": [{"type": "bme280"}]}, "sensors[0].addr"),
    ({"sensors": [{"type": "tmp117", "addr": 72}]}, "sensors[0].type"),
    ({"usb": [{"vid": "303A", "pid": "1001"}]}, "usb[0].vid"),
    ({"colour": "blue"}, "colour"),
    ({"id": "other"}, "id"),
])
def test_bad_profiles_are_refused_naming_file_and_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    path = _profile(tmp_path, **change)
    with pytest.raises(BoardError) as err:
        load_board(path)
    assert str(path) in str(err.value) and f"key '{key}'" in str(err.value)


def test_the_yolo_uno_gives_a_pin_for_every_kit_sensor() -> None:
    pins = load_board("yolo-uno").pins
    assert pins["adc"] == {"soil": 1, "light": 2, "gas": 3}  # A0-A2, all on ADC1
    assert pins["hcsr04"] == {"trig": 5, "echo": 6} and pins["onewire"] == 4
    assert pins["adc_vbat"] is None  # GPIO 1 is the A0 port, not a battery divider
    for other in ("esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "sim"):
        assert load_board(other).pins["adc"] is None and load_board(other).pins["hcsr04"] is None


@pytest.mark.parametrize(("change", "key"), [
    ({"pins__adc__soil": 11}, "pins.adc.soil"),             # not ADC1 (and SDA)
    ({"pins__adc__soil": 20}, "pins.adc.soil"),             # ADC2: stops while WiFi runs
    ({"pins__adc__light": 1}, "pins.adc.light"),            # already the soil port
    ({"pins__adc__water": 7}, "pins.adc.water"),            # not a role
    ({"pins__adc": [1, 2]}, "pins.adc"),
    ({"pins__hcsr04": {"trig": 5}}, "pins.hcsr04.echo"),
    ({"pins__hcsr04__echo": 4}, "pins.hcsr04.echo"),        # the 1-wire pin
    ({"pins__onewire": None, "sensors": [{"type": "ds18b20"}]}, "sensors[0].type"),
    ({"sensors": [{"type": "bh1750"}]}, "sensors[0].addr"),
    ({"sensors": [{"type": "soil"}]}, "sensors[0].pin"),
    ({"sensors": [{"type": "soil", "pin": 12}]}, "sensors[0].pin"),   # SCL, not ADC1
    ({"sensors": [{"type": "soil", "pin": 1, "dry": 3000}]}, "sensors[0].wet"),
    ({"sensors": [{"type": "soil", "pin": 1, "dry": 3000, "wet": 3000}]}, "sensors[0].wet"),
    ({"sensors": [{"type": "adc", "pin": 2}, {"type": "soil", "pin": 2}]}, "sensors[1].pin"),
    ({"sensors": [{"type": "hcsr04", "trig": 5, "echo": 5}]}, "sensors[0].echo"),
    ({"sensors": [{"type": "hcsr04", "trig": 11, "echo": 6}]}, "sensors[0].trig"),   # SDA
    ({"sensors": [{"type": "dht20", "addr": 56, "pin": 1}]}, "sensors[0].pin"),
    ({"sensors": [{"type": "adc", "pin": 2, "name": "Light!"}]}, "sensors[0].name"),
])
def test_bad_kit_pins_are_refused_naming_file_and_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    path = _profile(tmp_path, **change)
    with pytest.raises(BoardError) as err:
        load_board(path)
    assert str(path) in str(err.value) and f"key '{key}'" in str(err.value)


def test_kit_sensors_on_their_ports_load(tmp_path: Path) -> None:
    sensors = [{"type": "soil", "pin": 1, "dry": 3000, "wet": 1200}, {"type": "adc", "pin": 2, "name": "ldr"},
               {"type": "hcsr04", "trig": 5, "echo": 6}, {"type": "ds18b20"}, {"type": "bh1750", "addr": 0x23}]
    assert load_board(_profile(tmp_path, sensors=sensors)).sensors == sensors


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(BoardError, match="known boards: .*yolo-uno"):
        load_board("nope")


LILYGO = "lilygo-t-sim7080g-s3"
MODEM = {"family": "sim7080", "uart": 1, "tx": 17, "rx": 18, "pwrkey": 16, "pwrkey_active": 1}  # free on a Yolo UNO


def test_a_board_with_its_modem_on_it_carries_the_wiring() -> None:
    lilygo = load_board(LILYGO)
    assert lilygo.modem == {"family": "sim7080", "uart": 1, "tx": 5, "rx": 4, "pwrkey": 41, "pwrkey_active": 1,
                            "pmu": {"chip": "axp2101", "sda": 15, "scl": 7}}
    assert lilygo.gpios == {}  # the modem's GPIOs are not the profile's pins: sen provision must accept them
    assert lilygo.sensors == [] and lilygo.pins["i2c"] is None and lilygo.flash_size == "16MB"
    assert "unverified" in lilygo.notes.lower()
    assert [b.id for b in load_all() if b.modem is not None] == [LILYGO]


@pytest.mark.parametrize(("board", "change", "key"), [
    (LILYGO, {"pins__onewire": 5}, "modem.tx"),                 # the profile's 1-wire pin
    (LILYGO, {"pins__led": 15}, "modem.pmu.sda"),               # the PMU's bus on the LED pin
    ("yolo-uno", {"modem": {**MODEM, "tx": 11}}, "modem.tx"),  # the DHT20's SDA
    ("yolo-uno", {"sensors": [{"type": "soil", "pin": 7}], "modem": {**MODEM, "rx": 7}}, "modem.rx"),  # a sensor's pin
    (LILYGO, {"modem__rx": 5}, "modem.rx"),                     # the modem's TX already
    (LILYGO, {"modem__pmu__scl": 41}, "modem.pmu.scl"),         # PWRKEY
    (LILYGO, {"modem__pwrkey": 23}, "modem.pwrkey"),            # no GPIO 23 on the S3
    (LILYGO, {"modem__rx": 99}, "modem.rx"),
    (LILYGO, {"modem__pmu__sda": "15"}, "modem.pmu.sda"),
    (LILYGO, {"modem__family": "bg95"}, "modem.family"),
    (LILYGO, {"modem__uart": 0}, "modem.uart"),                 # the console
    (LILYGO, {"modem__uart": True}, "modem.uart"),
    (LILYGO, {"modem__pwrkey_active": 2}, "modem.pwrkey_active"),
    (LILYGO, {"modem__dtr": 42}, "modem.dtr"),
    (LILYGO, {"modem__pmu__chip": "axp192"}, "modem.pmu.chip"),
    (LILYGO, {"modem__pmu": {"chip": "axp2101", "sda": 15}}, "modem.pmu.scl"),
    (LILYGO, {"modem__pmu": "axp2101"}, "modem.pmu"),
    (LILYGO, {"modem": [5, 4, 41]}, "modem"),
    ("sim", {"modem": MODEM}, "modem"),                        # a virtual board's modem is simulated
])
def test_bad_modems_are_refused_naming_file_and_key(tmp_path: Path, board: str, change: dict[str, Any],
                                                     key: str) -> None:
    path = _profile(tmp_path, board, **change)
    with pytest.raises(BoardError) as err:
        load_board(path)
    assert str(path) in str(err.value) and f"key '{key}'" in str(err.value)


def test_a_modem_without_a_power_manager_loads(tmp_path: Path) -> None:
    assert load_board(_profile(tmp_path, "yolo-uno", modem=MODEM)).modem == {**MODEM, "pmu": None}
    assert load_board(_profile(tmp_path, LILYGO, modem__pmu=None)).modem == {**MODEM, "tx": 5, "rx": 4, "pwrkey": 41,
                                                                               "pmu": None}
