"""`sen provision`: a board's config.json from flags (or prompts), checked before it is written.

The board profile's ``pins`` and ``sensors`` are copied in (tests/contract/board_profile.md);
the firmware reads them from config.json and never reads hardware/ itself. With ``sensors``
(kit sensor names, ``sen provision --sensor soil ...``) the board's sensors are those instead,
each placed on the pins the profile gives for it (KIT_SENSORS); a sensor the profile has no pin
for is refused, naming the key. The profile's port map (``pins.adc``, ``pins.hcsr04``) goes into
the sensor entries (``pin``, ``trig``/``echo``), not into config.json's ``pins``. The result is
checked here (names, ports, transport) and, when the MicroPython unix port is at hand, by the
firmware's own checker (firmware/lib/config.py, and firmware/lib/cellcfg.py for a cellular
board's ``cell``), so a config that would stop the board at boot never reaches it. A cellular
board (``Cell``) gets its APN (a preset for Vietnam's networks, or given) and, on a real board,
its modem's UART and PWRKEY GPIOs, refused when the profile's pins or sensors use them; a board
with its modem on it (the profile's ``modem``: hardware/board_modem.py) gets that wiring without
``--modem-*`` flags (a flag given still wins), and the modem's power manager (``cell.pmu``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# MODEMS and MODEM_UARTS are re-exported: callers import them from here
from hardware.board_modem import MODEM_UARTS as MODEM_UARTS, MODEMS as MODEMS, pmu_gpios
from hardware.boards import MCUS, PORT_KEYS, RAW_MAX, BoardProfile
from hardware.errors import ProvisionError as ProvisionError  # re-exported: callers import it from here

REPO_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"[a-z0-9_-]{1,32}")


@dataclass(frozen=True)
class KitSensor:
    """A sensor sold with the kits, as ``sen provision --sensor NAME`` places it."""

    type: str  # the firmware's driver
    needs: str  # the profile key that must give its pin(s), e.g. "pins.adc.soil"
    what: str
    entry: dict[str, Any] = field(default_factory=dict)  # fixed keys: addr, name


# The kit's sensors by the name a student knows them by (hardware/WIRING.md).
KIT_SENSORS: dict[str, KitSensor] = {
    "dht20": KitSensor("dht20", "pins.i2c", "DHT20 temperature and humidity (I2C 0x38)", {"addr": 0x38}),
    "sht30": KitSensor("sht31", "pins.i2c", "SHT30 temperature and humidity (I2C 0x44; the SHT31 driver)",
                       {"addr": 0x44, "name": "sht30"}),
    "sht31": KitSensor("sht31", "pins.i2c", "SHT31 temperature and humidity (I2C 0x44)", {"addr": 0x44}),
    "bme280": KitSensor("bme280", "pins.i2c", "BME280 temperature, humidity and pressure (I2C 0x76)",
                        {"addr": 0x76}),
    "bh1750": KitSensor("bh1750", "pins.i2c", "BH1750 light, lux (I2C 0x23)", {"addr": 0x23}),
    "ds18b20": KitSensor("ds18b20", "pins.onewire", "DS18B20 waterproof temperature probe (1-wire)"),
    "soil": KitSensor("soil", "pins.adc.soil", "capacitive soil-moisture probe (analog)"),
    "ldr": KitSensor("adc", "pins.adc.light", "light-dependent resistor module (analog, raw)", {"name": "ldr"}),
    "gas": KitSensor("adc", "pins.adc.gas", "MQ-series gas sensor, e.g. MQ-2, MQ-135 (analog, raw)",
                     {"name": "gas"}),
    "hcsr04": KitSensor("hcsr04", "pins.hcsr04", "HC-SR04 ultrasonic distance, e.g. a water level"),
}


def _profile_value(profile: BoardProfile, dotted: str) -> Any:
    value: Any = {"pins": profile.pins}
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def kit_sensors(profile: BoardProfile) -> list[str]:
    """The kit sensors this board's profile has pins for."""
    return [name for name, kit in KIT_SENSORS.items() if _profile_value(profile, kit.needs) is not None]


def sensor_entries(profile: BoardProfile, names: list[str],
                   soil_cal: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """config.json ``sensors`` entries for kit sensors by name, on the profile's pins.

    ``soil_cal`` is the soil probe's (dry, wet) raw readings: in air and in water.
    """
    entries: list[dict[str, Any]] = []
    addrs: dict[int, str] = {}
    for name in names:
        kit = KIT_SENSORS.get(name)
        if kit is None:
            raise ProvisionError(f"unknown sensor {name!r}; the kit's sensors: {', '.join(KIT_SENSORS)}")
        if names.count(name) > 1:
            raise ProvisionError(f"sensor {name!r} is given twice (one of each kind per board)")
        pins = _profile_value(profile, kit.needs)
        if pins is None:
            has = ", ".join(kit_sensors(profile)) or "none"
            raise ProvisionError(f"sensor {name} needs {kit.needs}, which the board profile {profile.id} "
                                 f"({profile.path}) does not give (it has pins for: {has})")
        entry: dict[str, Any] = {"type": kit.type, **kit.entry}
        if "addr" in entry:
            other = addrs.setdefault(entry["addr"], name)
            if other != name:
                raise ProvisionError(f"sensors {other} and {name} both answer at I2C address {entry['addr']:#04x}: "
                                     "one bus cannot hold both")
        if kit.needs.startswith("pins.adc."):
            entry["pin"] = pins
        elif kit.type == "hcsr04":
            entry.update(trig=pins["trig"], echo=pins["echo"])
        if name == "soil" and soil_cal is not None:
            entry.update(dry=soil_cal[0], wet=soil_cal[1])
        entries.append(entry)
    if soil_cal is not None:
        if "soil" not in names:
            raise ProvisionError("--soil-dry/--soil-wet calibrate the soil sensor: add --sensor soil")
        dry, wet = soil_cal
        if not (0 <= dry <= RAW_MAX and 0 <= wet <= RAW_MAX) or dry == wet:
            raise ProvisionError(f"soil calibration: dry and wet must be two different raw readings in 0..{RAW_MAX} "
                                 f"(got dry={dry}, wet={wet})")
    return entries


# The cellular modems' APN presets (firmware/lib/cellcfg.py has the settings; firmware/CELLULAR.md)
APN_PRESETS = ("viettel", "vinaphone", "mobifone")


@dataclass(frozen=True, kw_only=True)
class Cell:
    """``sen provision --transport cellular``'s choices: the modem, its APN and, on a real board,
    the GPIOs it is wired to (hardware/WIRING.md, Cellular modems). A choice not given (None)
    takes the board profile's ``modem`` when it has one (``with_board_modem``)."""

    modem: str | None = None  # None: the profile's modem, else sim7080 (as uart and pwrkey_active: 1)
    mode: str = "mqtt"  # the modem's own MQTT stack, or ppp
    apn: str | None = None
    apn_preset: str | None = None
    user: str | None = None
    password: str | None = None
    tx: int | None = None  # ESP32 TX -> the modem's RX
    rx: int | None = None  # ESP32 RX <- the modem's TX
    pwrkey: int | None = None
    uart: int | None = None
    pwrkey_active: int | None = None
    psm: dict[str, str] | None = None  # {"tau", "active"}: timer bytes (hardware.cellpower)
    edrx: dict[str, Any] | None = None  # {"act", "value"}


def with_board_modem(profile: BoardProfile, cell: Cell) -> Cell:
    """``cell`` with the profile's modem wiring wherever it was not given (None), then the defaults
    for what is still not given: a SIM7080G on UART 1, PWRKEY active high. A flag given at the
    default's value (``--modem-uart 1``) is given, and wins over the profile."""
    board = profile.modem
    if board is not None:
        mine = {"modem": board["family"], **{k: board[k] for k in ("tx", "rx", "pwrkey", "uart", "pwrkey_active")}}
        cell = replace(cell, **{k: v for k, v in mine.items() if getattr(cell, k) is None})
    return replace(cell, modem=cell.modem or "sim7080", uart=1 if cell.uart is None else cell.uart,
                   pwrkey_active=1 if cell.pwrkey_active is None else cell.pwrkey_active)


def cell_settings(profile: BoardProfile, cell: Cell) -> dict[str, Any]:
    """config.json's ``cell``: the APN (a preset or given), the modem, and on a real board its UART
    and PWRKEY pins (given, or the profile's ``modem``), refused when missing, not a GPIO of the
    board's MCU, or held by the profile's pins, sensors (``BoardProfile.gpios``; a kit sensor plugs
    into a port the profile gives) or its modem's PMU bus; the PMU (``pmu``) is copied in."""
    cell = with_board_modem(profile, cell)
    if cell.modem not in MODEMS:
        raise ProvisionError(f"modem must be one of {', '.join(MODEMS)} (got {cell.modem!r})")
    if (cell.apn is None) == (cell.apn_preset is None):
        raise ProvisionError(f"a cellular board needs its APN: give --apn APN, or --apn-preset "
                             f"{'/'.join(APN_PRESETS)} (Vietnam's networks; firmware/CELLULAR.md)")
    if cell.apn_preset is not None and cell.apn_preset not in APN_PRESETS:
        raise ProvisionError(f"--apn-preset must be one of {', '.join(APN_PRESETS)} (got {cell.apn_preset!r})")
    out: dict[str, Any] = {"modem": cell.modem, "mode": cell.mode}
    if cell.apn_preset is not None:
        out["apn_preset"] = cell.apn_preset
    else:
        out.update(apn=cell.apn, user=cell.user or "", password=cell.password or "")
    out.update((k, v) for k, v in (("psm", cell.psm), ("edrx", cell.edrx)) if v is not None)
    if profile.mcu == "sim":
        return out  # sen sim wires each virtual board to its own simulated modem
    wires = {"--modem-tx": cell.tx, "--modem-rx": cell.rx, "--modem-pwrkey": cell.pwrkey}
    missing = [flag for flag, pin in wires.items() if pin is None]
    if missing:
        raise ProvisionError(f"a cellular {profile.name} needs the GPIOs its modem is wired to: give "
                             f"{', '.join(missing)} (hardware/WIRING.md, Cellular modems)")
    uarts = MODEM_UARTS[profile.mcu]
    if cell.uart not in uarts:
        raise ProvisionError(f"--modem-uart {cell.uart}: the modem needs UART {' or '.join(map(str, uarts))} on "
                             f"{profile.name} ({profile.mcu}; UART0 is the console)")
    pins = [pin for pin in wires.values() if pin is not None]
    if len(set(pins)) != len(pins):
        raise ProvisionError(f"--modem-tx, --modem-rx and --modem-pwrkey must be three different GPIOs (got {pins})")
    usable, held = MCUS[profile.mcu].gpio, {**profile.gpios, **pmu_gpios(profile.modem)}
    for flag, pin in wires.items():
        if pin not in usable:
            raise ProvisionError(f"{flag} {pin}: GPIO {pin} is not usable on {profile.name} "
                                 f"({profile.mcu}: GPIO {min(usable)}..{max(usable)})")
        if pin in held:
            raise ProvisionError(f"{flag} {pin}: GPIO {pin} is already used on {profile.name} by "
                                 f"'{held[pin]}' ({profile.path}): wire the modem to free GPIOs")
    out.update(uart=cell.uart, tx=cell.tx, rx=cell.rx, baud=115200, pwrkey=cell.pwrkey,
               pwrkey_active=cell.pwrkey_active)
    if profile.modem is not None and profile.modem["pmu"] is not None:
        out["pmu"] = dict(profile.modem["pmu"])  # the firmware switches its rails on before PWRKEY
    return out


def build_config(profile: BoardProfile, *, site: str, device_id: str | None, broker_host: str,
                 broker_port: int, transport: str = "mqtt", wifi_ssid: str | None = None,
                 wifi_password: str = "", interval_ms: int = 1000, sensors: list[str] | None = None,
                 soil_cal: tuple[int, int] | None = None, ota_pub: str | None = None,
                 cell: Cell | None = None) -> dict[str, Any]:
    """config.json for a board; ``sensors`` (kit names) replace the profile's own sensors;
    ``ota_pub`` (64 hex digits, the ota.pub of `sen ota keygen`) lets it take signed updates;
    ``cell``: the modem of a ``transport`` ``cellular`` board."""
    chosen = profile.sensors if sensors is None else sensor_entries(profile, sensors, soil_cal)
    if sensors is None and soil_cal is not None:
        raise ProvisionError("--soil-dry/--soil-wet calibrate the soil sensor: add --sensor soil")
    config: dict[str, Any] = {
        "site": site, "board": profile.id,
        "broker": {"host": broker_host, "port": broker_port, "keepalive": 30},
        "transport": transport, "interval_ms": interval_ms,
        "pins": {k: v for k, v in profile.pins.items() if k not in PORT_KEYS}, "sensors": chosen,
    }
    if device_id is not None:
        config["device_id"] = device_id
    if transport == "serial":
        config["ack"] = "e2e"
    if transport == "cellular":
        config["cell"] = cell_settings(profile, cell or Cell())
    if wifi_ssid:
        config["wifi"] = {"ssid": wifi_ssid, "password": wifi_password}
    if ota_pub is not None:
        if not re.fullmatch(r"[0-9a-f]{64}", ota_pub):
            raise ProvisionError("the OTA public key must be 64 hex digits (the ota.pub of sen ota keygen)")
        config["ota"] = {"pub": ota_pub}
    check_config(config, profile)
    return config


def check_config(config: dict[str, Any], profile: BoardProfile) -> None:
    for key in ("site", "board"):
        if not isinstance(config.get(key), str) or not _NAME.fullmatch(config[key]):
            raise ProvisionError(f"config key '{key}' must match [a-z0-9_-]{{1,32}} (got {config.get(key)!r})")
    if "device_id" in config and not _NAME.fullmatch(str(config["device_id"])):
        raise ProvisionError(f"config key 'device_id' must match [a-z0-9_-]{{1,32}} (got {config['device_id']!r})")
    port = config["broker"]["port"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ProvisionError(f"config key 'broker.port' must be 1..65535 (got {port!r})")
    if not config["broker"]["host"]:
        raise ProvisionError("config key 'broker.host' must not be empty")
    if config["transport"] not in ("mqtt", "serial", "cellular"):
        raise ProvisionError(f"config key 'transport' must be mqtt, serial or cellular (got {config['transport']!r})")
    if config["transport"] == "mqtt" and profile.mcu != "sim" and "wifi" not in config:
        raise ProvisionError("config key 'wifi.ssid' is missing: an MQTT board needs WiFi (--wifi-ssid), "
                             "or use --transport serial")
    if not 100 <= config["interval_ms"] <= 86_400_000:
        raise ProvisionError(f"config key 'interval_ms' must be 100..86400000 (got {config['interval_ms']})")


def firmware_check(config: dict[str, Any], micropython: str | None = None) -> str | None:
    """Run the firmware's own config checker on the unix port; its error line, or None when fine.

    Returns None without checking when no micropython command is available.
    """
    binary = micropython or shutil.which("micropython") or shutil.which(
        "micropython", path=str(Path(sys.executable).parent))
    if binary is None:
        return None
    lib = REPO_ROOT / "firmware" / "lib"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        # a cellular board's cell key is checked by cellcfg (the board does it when the transport starts)
        code = (f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport config, cellcfg\n"
                "try:\n if config.load('config.json')['transport'] == 'cellular':\n"
                "  cellcfg.settings('config.json')\n print('OK')\n"
                "except (config.ConfigError, cellcfg.CellError) as e:\n print('ERR', e)\n")
        result = subprocess.run([binary, "-c", code], cwd=tmp, capture_output=True, text=True,
                                timeout=30, check=False)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("OK", "ERR"))]
    if lines and lines[-1] == "OK":
        return None
    if lines:
        return lines[-1][4:]
    return f"the firmware's checker did not run: {(result.stderr or result.stdout).strip()[-300:]}"


def write_config(config: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=1) + "\n")
    return out
