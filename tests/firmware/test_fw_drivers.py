"""Sensor drivers on the real MicroPython VM against the register-level simulated devices
(hardware/simdev/simdev.py), with known answers from the datasheets, and fault injection."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.firmware

PRELUDE = """
import sys, asyncio
sys.path.insert(1, %r); sys.path.insert(1, %r)
import simdev, drv_bme280, drv_sht
bus = simdev.setup(3, [{'type': 'bme280', 'addr': 0x76}, {'type': 'sht31', 'addr': 0x44},
                       {'type': 'dht20', 'addr': 0x38}])
def faults(f): simdev.F.clear(); simdev.F.update(f)
def run(c): return asyncio.run(c)
"""


def _mp(micropython_bin: str, repo_root: Path, body: str) -> str:
    code = PRELUDE % (str(repo_root / "firmware" / "lib"), str(repo_root / "hardware" / "simdev")) + body
    done = subprocess.run([micropython_bin, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bme280_datasheet_worked_example(micropython_bin: str, repo_root: Path) -> None:
    # BMP280/BME280 datasheet worked example: adc_T 519888, adc_P 415148 with its
    # calibration -> T = 25.08 degC, p = 100653 Pa (64-bit integer formula: 100653.27)
    out = _mp(micropython_bin, repo_root, """
simdev.force(0x76, 519888, 415148, 0x6000)
drv = drv_bme280.BME280(bus, 0x76)
m = run(drv.read())
print(m['temp_c'], m['p_hpa'], drv.cal[:3])
simdev.force(0x76)
m = run(drv.read()); print('live', 15 < m['temp_c'] < 30, 990 < m['p_hpa'] < 1030, 20 < m['rh_pct'] < 80)
""")
    first, live = out.splitlines()
    assert first == "25.08 1006.53 (27504, 26435, -1000)"
    assert live == "live True True True"


def test_sht31_crc_and_conversion(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
print(hex(drv_sht.crc8(b'\\xbe\\xef', 2)))
simdev.force(0x44, 0x6666, 0x8000)
s = drv_sht.SHT31(bus, 0x44); print(run(s.read()))
faults({'sht31': 'crc'})
try: run(s.read())
except ValueError as e: print('err', e)
faults({'sht31': 'nack'})
try: run(s.read())
except OSError as e: print('oserr', e.args[0])
""")
    lines = out.splitlines()
    assert lines[0] == "0x92"  # Sensirion datasheet: CRC of 0xBEEF is 0x92
    # T = -45 + 175 * 0x6666 / 65535 = 25.0; RH = 100 * 0x8000 / 65535 = 50.0
    assert lines[1] in ("{'temp_c': 25.0, 'rh_pct': 50.0}", "{'rh_pct': 50.0, 'temp_c': 25.0}")
    assert lines[2] == "err sht31 crc" and lines[3] == "oserr 19"


def test_dht20_init_trigger_and_faults(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
d = simdev.D[0x38]
print(hex(d[4]))
simdev.force(0x38, 1 << 19, 3 << 18)  # RH 50 %, T = 0.75 * 200 - 50 = 100 -> use 0x4CCCD below
s = drv_sht.DHT20(bus, 0x38); print(run(s.read()), hex(d[4]))
simdev.force(0x38, 1 << 19, 0x4CCCD); print(run(s.read()))
faults({'dht20': 'crc'})
try: run(s.read())
except ValueError as e: print('err', e)
faults({'dht20': 'stuck'})
""")
    lines = out.splitlines()
    assert lines[0] == "0x10"  # powered, not calibrated: the driver must send 0xBE 08 00
    assert "'rh_pct': 50.0" in lines[1] and "'temp_c': 100.0" in lines[1] and lines[1].endswith("0x18")
    assert "'temp_c': 10.0" in lines[2]  # 0x4CCCD / 2^20 * 200 - 50 = 10.0
    assert lines[3] == "err dht20 crc"
