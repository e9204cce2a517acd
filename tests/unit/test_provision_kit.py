"""`sen provision --sensor NAME`: the kit's sensors (DHT20, SHT30, BH1750, DS18B20, soil probe, LDR,
MQ gas sensor, HC-SR04) placed on the pins the board profile gives, and refused, naming the key,
where the profile gives none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.boards import KIT_SENSOR_NAMES
from hardware.boards import PORT_KEYS, BoardError, load_board
from hardware.provision import KIT_SENSORS, ProvisionError, build_config, firmware_check, kit_sensors, sensor_entries

NEW_TYPES = ("ds18b20", "soil", "bh1750", "hcsr04", "adc")  # the drivers the firmware side is adding


def _config(board: str, sensors: list[str] | None, **kw: Any) -> dict[str, Any]:
    return build_config(load_board(board), site="garden", device_id="yolo-01", broker_host="10.0.0.2",
                        broker_port=1883, transport="serial", sensors=sensors, **kw)


def _sen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def test_the_command_line_offers_exactly_the_kit() -> None:
    assert KIT_SENSOR_NAMES == tuple(KIT_SENSORS)
    assert {k.type for k in KIT_SENSORS.values()} >= set(NEW_TYPES)


def test_the_yolo_uno_places_every_kit_sensor_on_its_port() -> None:
    config = _config("yolo-uno", list(KIT_SENSORS.keys() - {"sht31"}), soil_cal=(2900, 1200))
    by_name = {s.get("name", s["type"]): s for s in config["sensors"]}
    assert by_name == {
        "dht20": {"type": "dht20", "addr": 0x38},
        "sht30": {"type": "sht31", "addr": 0x44, "name": "sht30"},
        "bme280": {"type": "bme280", "addr": 0x76},
        "bh1750": {"type": "bh1750", "addr": 0x23},
        "ds18b20": {"type": "ds18b20"},
        "soil": {"type": "soil", "pin": 1, "dry": 2900, "wet": 1200},
        "ldr": {"type": "adc", "pin": 2, "name": "ldr"},
        "gas": {"type": "adc", "pin": 3, "name": "gas"},
        "hcsr04": {"type": "hcsr04", "trig": 5, "echo": 6},
    }
    # the buses stay in pins; the port map went into the entries
    assert config["pins"]["i2c"] == {"bus": "soft", "sda": 11, "scl": 12, "freq": 100000}
    assert config["pins"]["onewire"] == 4 and not set(PORT_KEYS) & set(config["pins"])
    assert kit_sensors(load_board("yolo-uno")) == list(KIT_SENSORS)


def test_what_provision_writes_is_a_valid_profile_sensor_list(tmp_path: Path) -> None:
    """The board-profile checker and provision agree: the entries provision makes load as a profile's."""
    yolo = load_board("yolo-uno")
    doc = json.loads(yolo.path.read_text())
    doc["sensors"] = sensor_entries(yolo, ["dht20", "ds18b20", "soil", "bh1750", "ldr", "gas", "hcsr04"],
                                    soil_cal=(3000, 1300))
    path = tmp_path / "yolo-uno.json"
    path.write_text(json.dumps(doc))
    assert load_board(path).sensors == doc["sensors"]
    doc["sensors"][2]["pin"] = 11  # the soil probe on SDA
    path.write_text(json.dumps(doc))
    with pytest.raises(BoardError, match=r"key 'sensors\[2\].pin'"):
        load_board(path)


@pytest.mark.parametrize(("board", "sensor", "key"), [
    ("esp32-devkitc", "soil", "pins.adc.soil"),
    ("esp32-devkitc", "ldr", "pins.adc.light"),
    ("esp32-s3-devkitc-1", "gas", "pins.adc.gas"),
    ("esp32-c3-devkitm-1", "hcsr04", "pins.hcsr04"),
    ("sim", "ds18b20", "pins.onewire"),
])
def test_a_sensor_without_a_pin_is_refused_naming_the_key(board: str, sensor: str, key: str) -> None:
    with pytest.raises(ProvisionError) as err:
        _config(board, ["dht20", sensor])
    assert f"needs {key}" in str(err.value) and board in str(err.value)
    assert "dht20" in str(err.value)  # and says what the board can take


@pytest.mark.parametrize(("sensors", "cal", "says"), [
    (["dht20", "dht20"], None, "given twice"),
    (["sht30", "sht31"], None, "0x44"),
    (["moisture"], None, "unknown sensor 'moisture'"),
    (["dht20"], (3000, 1200), "add --sensor soil"),
    (["soil"], (1200, 1200), "two different raw readings"),
    (["soil"], (70000, 1200), "two different raw readings"),
])
def test_bad_choices_are_refused(sensors: list[str], cal: tuple[int, int] | None, says: str) -> None:
    with pytest.raises(ProvisionError, match=says):
        _config("yolo-uno", sensors, soil_cal=cal)


def test_without_sensor_flags_the_profile_s_own_sensors_stay() -> None:
    assert _config("yolo-uno", None)["sensors"] == [{"type": "dht20", "addr": 0x38}]
    with pytest.raises(ProvisionError, match="add --sensor soil"):
        _config("yolo-uno", None, soil_cal=(3000, 1200))


@pytest.mark.parametrize("sensor", list(KIT_SENSORS))
def test_the_firmware_checker_takes_each_kit_config(sensor: str) -> None:
    """The firmware's own checker (firmware/lib/config.py, on the unix port) accepts each kit sensor's
    config, pins included; the only refusal allowed is the sensor type of a driver the firmware side
    has not landed yet (NEW_TYPES)."""
    config = _config("yolo-uno", [sensor], soil_cal=(3000, 1200) if sensor == "soil" else None)
    assert "interval_ms" in (firmware_check({**config, "interval_ms": 5}) or "")  # the checker runs here
    problem = firmware_check(config)
    kind = KIT_SENSORS[sensor].type
    if problem is not None:
        assert kind in NEW_TYPES and "key 'sensors[0].type'" in problem and f"(got '{kind}')" in problem, problem


def test_cli_refuses_a_sensor_the_board_has_no_pin_for(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    result = _sen("provision", "--board", "esp32-devkitc", "--site", "garden", "--transport", "serial",
                  "--sensor", "dht20", "--sensor", "soil", "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sensor soil needs pins.adc.soil" in result.stderr and not out.exists()
    half = _sen("provision", "--board", "yolo-uno", "--site", "garden", "--transport", "serial",
                "--sensor", "soil", "--soil-dry", "3000", "--out", str(out))
    assert half.returncode == 2 and "--soil-wet together" in half.stderr and not out.exists()


def test_cli_writes_the_chosen_sensors(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    result = _sen("provision", "--board", "yolo-uno", "--site", "garden", "--device", "yolo-02",
                  "--transport", "serial", "--sensor", "dht20", "--sensor", "sht30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "(sensors: dht20, sht30)" in result.stdout
    assert json.loads(out.read_text())["sensors"] == [{"type": "dht20", "addr": 0x38},
                                                      {"type": "sht31", "addr": 0x44, "name": "sht30"}]
    assert "--sensor NAME" in _sen("provision", "--help").stdout
