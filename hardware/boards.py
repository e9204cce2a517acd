"""Board profiles: `hardware/boards/<id>.json` (schema: tests/contract/board_profile.md).

    profile = load_board("yolo-uno")          # or load_board(Path("my-board.json"))
    profile.pins, profile.sensors, profile.modem, profile.flash_offset, profile.gpios ...

Every check names the file and the key: unknown keys, GPIOs the MCU lacks, a pin used twice, an ADC pin off ADC1 (ADC2
stops with WiFi on), a flash offset or image unfit for the MCU, an I2C sensor with no address, a sensor whose pin the
profile lacks, a bad ``modem`` (board_modem.py). Kit sensors (hardware/WIRING.md) use ``pins.i2c``, ``pins.onewire``,
``pins.adc`` (ADC1 ports: soil, light, gas), ``pins.hcsr04``; provision copies the last two into sensor entries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.board_modem import check_modem
from hardware.errors import BoardError as BoardError  # re-exported: callers import it from here

BOARDS_DIR = Path(__file__).resolve().parent / "boards"


@dataclass(frozen=True)
class Mcu:
    gpio: frozenset[int]
    adc1: frozenset[int]
    offset: int | None
    images: tuple[str, ...]
    chip: str  # esptool's --chip


def _span(lo: int, hi: int, *, minus: tuple[int, ...] = ()) -> frozenset[int]:
    return frozenset(set(range(lo, hi + 1)) - set(minus))


MCUS: dict[str, Mcu] = {
    "esp32": Mcu(_span(0, 39, minus=(20, 24, 28, 29, 30, 31)), _span(32, 39), 0x1000, ("ESP32_GENERIC",), "esp32"),
    "esp32s3": Mcu(_span(0, 48, minus=(22, 23, 24, 25)), _span(1, 10), 0x0, ("ESP32_GENERIC_S3",), "esp32s3"),
    "esp32c3": Mcu(_span(0, 21), _span(0, 4), 0x0, ("ESP32_GENERIC_C3",), "esp32c3"),
    "sim": Mcu(_span(0, 63), _span(0, 63), None, (), "sim"),
}
SENSOR_TYPES = ("bme280", "sht31", "dht20", "dht22", "vbat", "chip_temp", "ds18b20", "soil", "bh1750", "hcsr04", "adc")
I2C_SENSORS = ("bme280", "sht31", "dht20", "bh1750")
ADC_SENSORS = ("soil", "adc")  # an entry of these types names its ADC1 pin ("pin")
ADC_ROLES = ("soil", "light", "gas")  # the keys of pins.adc
RAW_MAX = 65535  # soil "dry"/"wet": raw ADC readings (read_u16 scale at most)
_TOP = {"id", "name", "vendor", "mcu", "flash_offset", "image", "flash_size", "pins", "sensors",
        "usb", "notes", "modem"}
_REQUIRED = _TOP - {"notes", "modem"}
_PIN_KEYS = {"i2c", "onewire", "adc_vbat", "led", "dht22", "adc", "hcsr04"}
PORT_KEYS = ("adc", "hcsr04")  # the profile's port map: copied into sensor entries, not config.json's pins
_SENSOR_KEYS = {"type", "addr", "interval_ms", "filter", "name", "pin", "dry", "wet", "trig", "echo"}
_ID = re.compile(r"[a-z0-9_-]{1,32}")
_HEX4 = re.compile(r"[0-9a-f]{4}")


@dataclass(frozen=True, kw_only=True)
class BoardProfile:
    id: str
    name: str
    vendor: str
    mcu: str
    flash_offset: int | None
    image: str | None
    flash_size: str | None
    pins: dict[str, Any]
    sensors: list[dict[str, Any]]
    usb: list[dict[str, str]]
    notes: str
    path: Path
    gpios: dict[int, str]  # every GPIO the profile's pins and sensors hold -> the key holding it
    modem: dict[str, Any] | None  # the modem on the board (board_modem.py); its GPIOs are not in gpios

    @property
    def chip(self) -> str:
        return MCUS[self.mcu].chip

    @property
    def usb_ids(self) -> list[tuple[str, str]]:
        return [(u["vid"], u["pid"]) for u in self.usb]


class _Check:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, why: str) -> BoardError:
        return BoardError(f"{self.path}: key '{key}' {why}")

    def keys(self, doc: dict[str, Any], allowed: set[str], required: set[str], where: str) -> None:
        for key in sorted(set(doc) - allowed):
            raise self.fail(f"{where}{key}", f"is unknown (known: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(doc)):
            raise self.fail(f"{where}{key}", "is missing")

    def integer(self, value: object, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"must be an integer in {lo}..{hi} (got {value!r})")
        return value

    def gpio(self, value: object, key: str, mcu: Mcu, allowed: frozenset[int], used: dict[int, str]) -> None:
        """A GPIO of ``allowed`` that ``used`` (GPIO -> the key holding it) has not, then recorded there."""
        number = self.integer(value, key, 0, 255)
        if number not in allowed:
            raise self.fail(key, f"GPIO {number} is not usable here (this MCU: GPIO {min(mcu.gpio)}..{max(mcu.gpio)}"
                            f"{', ADC1 only' if allowed is mcu.adc1 else ''})")
        if number in used:
            raise self.fail(key, f"GPIO {number} is already used by '{used[number]}'")
        used[number] = key


def board_path(name: str | Path) -> Path:
    if isinstance(name, Path) or "/" in str(name) or str(name).endswith(".json"):
        return Path(name)
    return BOARDS_DIR / f"{name}.json"


def board_ids() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def load_all() -> list[BoardProfile]:
    return [load_board(i) for i in board_ids()]


def load_board(name: str | Path) -> BoardProfile:
    """Read and check one profile, by id (``yolo-uno``) or by path."""
    path = board_path(name)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise BoardError(f"{path}: no such board profile (known boards: {', '.join(board_ids())})") from None
    except (OSError, ValueError) as err:
        raise BoardError(f"{path}: cannot read the profile: {err}") from None
    return check_profile(doc, path)


def check_profile(doc: object, path: Path) -> BoardProfile:
    ck = _Check(path)
    if not isinstance(doc, dict):
        raise BoardError(f"{path}: the top level must be a JSON object")
    ck.keys(doc, _TOP, _REQUIRED, "")
    board_id = doc["id"]
    if not isinstance(board_id, str) or not _ID.fullmatch(board_id):
        raise ck.fail("id", f"must match [a-z0-9_-]{{1,32}} (got {board_id!r})")
    if path.suffix == ".json" and path.stem != board_id:
        raise ck.fail("id", f"must match the file name {path.stem!r} (got {board_id!r})")
    for key in ("name", "vendor"):
        if not isinstance(doc[key], str) or not doc[key]:
            raise ck.fail(key, "must be a non-empty string")
    mcu_name = doc["mcu"]
    if mcu_name not in MCUS:
        raise ck.fail("mcu", f"must be one of {', '.join(MCUS)} (got {mcu_name!r})")
    mcu = MCUS[mcu_name]
    offset = _offset(ck, doc["flash_offset"], mcu)
    image = doc["image"]
    if mcu.images and image not in mcu.images:
        raise ck.fail("image", f"must be {' or '.join(mcu.images)} for {mcu_name} (got {image!r})")
    if not mcu.images and image is not None:
        raise ck.fail("image", "must be null for the simulator")
    pins, used = _pins(ck, doc["pins"], mcu)
    sensors, taken = _sensors(ck, doc["sensors"], pins, mcu, used)
    modem = check_modem(ck, doc.get("modem"), mcu_name, mcu, {**used, **taken})  # its GPIOs: not in gpios
    return BoardProfile(id=board_id, name=doc["name"], vendor=doc["vendor"], mcu=mcu_name, flash_offset=offset,
                        image=image, flash_size=doc["flash_size"], pins=pins, sensors=sensors, modem=modem,
                        usb=_usb(ck, doc["usb"]), notes=str(doc.get("notes", "")), path=path, gpios={**used, **taken})


def _offset(ck: _Check, value: object, mcu: Mcu) -> int | None:
    if mcu.offset is None:
        if value is not None:
            raise ck.fail("flash_offset", "must be null for the simulator")
        return None
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]+", value):
        raise ck.fail("flash_offset", f"must be a hex string like \"0x1000\" (got {value!r})")
    if int(value, 16) != mcu.offset:
        raise ck.fail("flash_offset", f"must be {mcu.offset:#x} for this MCU (got {value})")
    return mcu.offset


def _pins(ck: _Check, pins: object, mcu: Mcu) -> tuple[dict[str, Any], dict[int, str]]:
    if not isinstance(pins, dict):
        raise ck.fail("pins", "must be an object")
    ck.keys(pins, _PIN_KEYS, set(), "pins.")
    used: dict[int, str] = {}

    def gpio(value: object, key: str, allowed: frozenset[int]) -> None:
        if value is not None:
            ck.gpio(value, key, mcu, allowed, used)

    def group(key: str, allowed: set[str], required: set[str]) -> Any:  # an object of pins, or null
        value = pins.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise ck.fail(f"pins.{key}", f"must be an object ({', '.join(sorted(allowed))}) or null")
            ck.keys(value, allowed, required, f"pins.{key}.")
        return value

    i2c = group("i2c", {"bus", "sda", "scl", "freq"}, {"bus", "sda", "scl"})
    if i2c is not None:
        if i2c["bus"] not in (0, 1, "soft") or isinstance(i2c["bus"], bool):
            raise ck.fail("pins.i2c.bus", f"must be 0, 1 or \"soft\" (got {i2c['bus']!r})")
        gpio(i2c["sda"], "pins.i2c.sda", mcu.gpio)
        gpio(i2c["scl"], "pins.i2c.scl", mcu.gpio)
        ck.integer(i2c.get("freq", 100000), "pins.i2c.freq", 1000, 1_000_000)
    for key in ("onewire", "led", "dht22"):
        gpio(pins.get(key), f"pins.{key}", mcu.gpio)
    vbat = group("adc_vbat", {"pin", "divider"}, {"pin"})
    if vbat is not None:
        gpio(vbat["pin"], "pins.adc_vbat.pin", mcu.adc1)
        divider = vbat.get("divider", 1.0)
        if isinstance(divider, bool) or not isinstance(divider, (int, float)) or not 1 <= divider <= 20:
            raise ck.fail("pins.adc_vbat.divider", f"must be a number in 1..20 (got {divider!r})")
    for role in ADC_ROLES:  # pins.adc: {role: GPIO}, the roles only
        gpio((group("adc", set(ADC_ROLES), set()) or {}).get(role), f"pins.adc.{role}", mcu.adc1)
    for end in ("trig", "echo"):
        gpio((group("hcsr04", {"trig", "echo"}, {"trig", "echo"}) or {}).get(end), f"pins.hcsr04.{end}", mcu.gpio)
    return {key: pins.get(key) for key in sorted(_PIN_KEYS)}, used


def _sensors(ck: _Check, sensors: object, pins: dict[str, Any], mcu: Mcu,
             used: dict[int, str]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    if not isinstance(sensors, list):
        raise ck.fail("sensors", "must be a list")
    out: list[dict[str, Any]] = []
    taken: dict[int, str] = {}  # GPIOs the entries name themselves (returned beside the entries)
    for i, sensor in enumerate(sensors):
        where = f"sensors[{i}]"
        if not isinstance(sensor, dict):
            raise ck.fail(where, "must be an object")
        ck.keys(sensor, _SENSOR_KEYS, {"type"}, f"{where}.")
        kind = sensor["type"]
        if kind not in SENSOR_TYPES:
            raise ck.fail(f"{where}.type", f"must be one of {', '.join(SENSOR_TYPES)} (got {kind!r})")
        if kind in I2C_SENSORS:
            if pins.get("i2c") is None:
                raise ck.fail(f"{where}.type", f"{kind} needs pins.i2c")
            if "addr" not in sensor:
                raise ck.fail(f"{where}.addr", f"is missing ({kind} is an I2C sensor)")
            ck.integer(sensor["addr"], f"{where}.addr", 0x08, 0x77)
        elif "addr" in sensor:
            raise ck.fail(f"{where}.addr", f"is only for I2C sensors, not {kind}")
        for key, needs in (("dht22", "dht22"), ("vbat", "adc_vbat"), ("ds18b20", "onewire")):
            if kind == key and pins.get(needs) is None:
                raise ck.fail(f"{where}.type", f"{kind} needs pins.{needs}")
        _sensor_pins(ck, sensor, where, mcu, used, taken)
        name = sensor.get("name", "ok")
        if not isinstance(name, str) or not _ID.fullmatch(name):
            raise ck.fail(f"{where}.name", f"must match [a-z0-9_-]{{1,32}} (got {sensor['name']!r})")
        if "interval_ms" in sensor:
            ck.integer(sensor["interval_ms"], f"{where}.interval_ms", 100, 86_400_000)
        out.append(dict(sensor))
    return out, taken


def _sensor_pins(ck: _Check, sensor: dict[str, Any], where: str, mcu: Mcu, used: dict[int, str],
                 taken: dict[int, str]) -> None:
    """The pins an entry names itself: ``pin`` (soil, adc: ADC1), ``trig``/``echo`` (hcsr04),
    each on a GPIO no other pin key holds, and soil's ``dry``/``wet`` calibration."""
    kind = sensor["type"]
    own = {"pin": kind in ADC_SENSORS, "trig": kind == "hcsr04", "echo": kind == "hcsr04", "dry": kind == "soil",
           "wet": kind == "soil"}
    for key in [k for k, allowed in own.items() if k in sensor and not allowed]:
        raise ck.fail(f"{where}.{key}", f"is not a key of a {kind} sensor")
    for key in [k for k in ("pin", "trig", "echo") if own[k]]:
        if key not in sensor:
            raise ck.fail(f"{where}.{key}", f"is missing ({kind} needs its GPIO)")
        number = ck.integer(sensor[key], f"{where}.{key}", 0, 255)
        if number not in (mcu.adc1 if key == "pin" else mcu.gpio):
            raise ck.fail(f"{where}.{key}", f"GPIO {number} is not usable here"
                          f"{' (ADC1 only: ADC2 stops while WiFi runs)' if key == 'pin' else ''}")
        holder = used.get(number, "")  # another pin key's GPIO (not the port it plugs into), another entry's
        if not holder or holder.startswith(("pins.adc.", "pins.hcsr04.")):
            holder = taken.get(number, "")
        if holder:
            raise ck.fail(f"{where}.{key}", f"GPIO {number} is already used by '{holder}'")
        taken[number] = f"{where}.{key}"
    if ("dry" in sensor) != ("wet" in sensor):
        raise ck.fail(f"{where}.{'wet' if 'dry' in sensor else 'dry'}", "is missing (give dry and wet together)")
    if "dry" in sensor and ck.integer(sensor["dry"], f"{where}.dry", 0, RAW_MAX) == ck.integer(
            sensor["wet"], f"{where}.wet", 0, RAW_MAX):
        raise ck.fail(f"{where}.wet", "must differ from dry (the raw reading in water and in air)")


def _usb(ck: _Check, usb: object) -> list[dict[str, str]]:
    if not isinstance(usb, list):
        raise ck.fail("usb", "must be a list")
    out: list[dict[str, str]] = []
    for i, entry in enumerate(usb):
        if not isinstance(entry, dict):
            raise ck.fail(f"usb[{i}]", "must be an object")
        ck.keys(entry, {"vid", "pid", "what"}, {"vid", "pid"}, f"usb[{i}].")
        for key in ("vid", "pid"):
            if not isinstance(entry[key], str) or not _HEX4.fullmatch(entry[key]):
                raise ck.fail(f"usb[{i}].{key}", f"must be 4 lower-case hex digits (got {entry[key]!r})")
        out.append({"vid": entry["vid"], "pid": entry["pid"], "what": str(entry.get("what", ""))})
    return out
