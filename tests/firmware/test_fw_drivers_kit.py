"""The kit's sensor drivers (DS18B20, capacitive soil probe, BH1750, HC-SR04, an ADC channel) on
the real MicroPython VM, against the simulated devices of hardware/simdev/simkit.py and simow.py
(1-wire time slots and ROM codes, BH1750 opcodes over the simulated I2C bus, ADC counts, echo
widths), with known answers from the datasheets and the Maxim application notes; their config
keys; and whole boards with them, the smart-garden example's among them, in 64K."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, board_config, build_mpy, wait_for

pytestmark = pytest.mark.firmware

PRELUDE = """
import sys, asyncio, time
sys.path.insert(1, %r); sys.path.insert(1, %r)
import simdev, simkit, drv_ds18b20 as ds
simdev.setup(3, [])
def faults(f): simdev.F.clear(); simdev.F.update(f)
def run(c): return asyncio.run(c)
def kv(m): return ' '.join(['%%s=%%s' %% (k, m[k]) for k in sorted(m)]) if isinstance(m, dict) else m
def err(c):
    try: return kv(run(c))
    except (OSError, ValueError) as e: return '%%s %%s' %% (type(e).__name__, e.args[0])
def bus(n=1, bits=12, rom=None):
    s = {'type': 'ds18b20', 'probes': n, 'bits': bits}
    if rom: s['rom'] = rom
    cfg = {'pins': {'onewire': 4}, 'sensors': [s]}
    ds._ow.clear()
    return ds.probes(s, cfg, simkit, lambda m: print('log', m)), cfg
"""


def _mp(micropython_bin: str, repo_root: Path, body: str, timeout: float = 60) -> list[str]:
    code = PRELUDE % (str(repo_root / "firmware" / "lib"), str(repo_root / "hardware" / "simdev")) + body
    done = subprocess.run([micropython_bin, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return [ln for ln in done.stdout.splitlines() if not ln.startswith("log ")]


# DS18B20 -----------------------------------------------------------------------------------

def test_crc8_known_answers(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
print(hex(ds.crc8(b'\\x02\\x1c\\xb8\\x01\\x00\\x00\\x00', 7)), ds.crc8(b'\\x02\\x1c\\xb8\\x01\\x00\\x00\\x00\\xa2', 8))
print(hex(ds.crc8(b'123456789', 9)))
print(hex(ds.crc8(b'\\x50\\x05\\x4b\\x46\\x7f\\xff\\x0c\\x10', 8)))
""")
    # Maxim AN27 (Understanding and Using Cyclic Redundancy Checks with Maxim 1-Wire and iButton
    # Products): the ROM 02 1C B8 01 00 00 00 has the CRC A2, and the CRC over all 8 bytes is 0
    assert out[0] == "0xa2 0"
    assert out[1] == "0xa1"  # CRC-8/MAXIM-DOW's check value ("123456789")
    assert out[2] == "0x1c"  # the DS18B20's power-on scratchpad (85 degC, TH 4B, TL 46, 12 bits)


def test_rom_search_finds_three_probes_on_one_pin(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
drv, cfg = bus(3, 9)
ow = drv[0].ow
print(sorted([p[0].hex() for p in ow.p]))
print(sorted([d.rom.hex() for d in drv]))
print([d.name for d in drv])
print([ds.crc8(d.rom, 8) for d in drv])
print([err(d.read()) for d in drv])
""")
    on_bus, found = json.loads(out[0].replace("'", '"')), json.loads(out[1].replace("'", '"'))
    assert len(on_bus) == 3 and found == on_bus  # AN187: every ROM code, once
    names = json.loads(out[2].replace("'", '"'))
    assert sorted(names) == sorted(f"ds18b20_{rom[-4:]}" for rom in on_bus)
    assert out[3] == "[0, 0, 0]"
    temps = [float(m) for m in re.findall(r"temp_c=(-?[\d.]+)", out[4])]
    assert len(temps) == 3 and all(t * 2 == int(t * 2) for t in temps)  # 9 bits: 0.5 degC steps


def test_datasheet_temperature_words(micropython_bin: str, repo_root: Path) -> None:
    # DS18B20 datasheet, Table 1 (temperature/data relationship), 12 bits
    words = {0x07D0: 125.0, 0x0191: 25.0625, 0x00A2: 10.125, 0x0008: 0.5, 0x0000: 0.0,
             0xFFF8: -0.5, 0xFF5E: -10.125, 0xFE6F: -25.0625, 0xFC90: -55.0}
    out = _mp(micropython_bin, repo_root, f"WORDS = {list(words)!r}\n" + """
drv, cfg = bus(1, 12)
d = drv[0]
for w in WORDS:
    simkit.X[d.name] = w
    print(run(d.read())['temp_c'])
simkit.X[d.name] = 0x07FF; print(err(d.read()))
""")
    assert [float(x) for x in out[:-1]] == list(words.values())
    assert out[-1] == "ValueError range"  # 127.9 degC: beyond the probe's -55..125


def test_85_degrees_power_on_value_is_an_error(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
drv, cfg = bus(1, 9)
d, ow = drv[0], drv[0].ow
# read before any conversion: the power-on scratchpad, 85 degC, CRC 1C
ow.reset(); ds.write(ow, b'\\xcc\\xbe'); print(ds.read(ow, 9).hex())
print(err(d.read()))
faults({d.name: 'poweron'}); print(err(d.read()))
faults({}); print(err(d.read()))
simkit.X[d.name] = 0x0550; print(err(d.read()))
""")
    assert out[0] == "5005" "4b467fff0c101c"
    assert out[1].startswith("temp_c=")
    assert out[2] == "ValueError poweron"  # a probe that reset keeps 85 degC: never a reading
    assert out[3].startswith("temp_c=")  # it was set up again (resolution) and converts
    assert out[4] == "ValueError poweron"


def test_conversion_time_follows_the_resolution(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
drv, cfg = bus(1, 12)
d, ow = drv[0], drv[0].ow
run(d.read())
t = time.ticks_ms(); run(d.read()); print(time.ticks_diff(time.ticks_ms(), t))
# the bus: Convert T, then read slots give 0 until the conversion is done (750 ms at 12 bits)
ow.reset(); ds.write(ow, b'\\xcc\\x44'); t = time.ticks_ms()
busy = ow.readbit()
while not ow.readbit(): pass
print(busy, time.ticks_diff(time.ticks_ms(), t))
drv, cfg = bus(1, 9)
d = drv[0]
run(d.read())
t = time.ticks_ms(); run(d.read()); print(time.ticks_diff(time.ticks_ms(), t))
ow = d.ow; ow.reset(); ds.write(ow, b'\\xcc\\xbe'); print(hex(ds.read(ow, 9)[4]))
""")
    t12 = int(out[0])
    busy, conv = out[1].split()
    t9 = int(out[2])
    assert 750 <= t12 < 1500
    assert busy == "0" and 740 <= int(conv) < 1000
    assert 93 <= t9 < 400  # 93.75 ms at 9 bits
    assert out[3] == "0x1f"  # config register: R1 R0 = 00, 9 bits


def test_a_vanished_probe_is_reported_and_the_others_keep_sampling(micropython_bin: str,
                                                                   repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
drv, cfg = bus(3, 9)
gone = drv[1].name
faults({gone: 'nack'})
print([err(d.read()) if d.name == gone else 'temp_c' in run(d.read()) for d in drv])
print(len(ds.search(drv[0].ow)))
faults({})
print(['temp_c' in run(d.read()) for d in drv])
faults({drv[0].name: 'crc'}); print(err(drv[0].read()), 'temp_c' in run(drv[2].read()))
faults({'ds18b20': 'nack'}); print(err(drv[2].read()))
""")
    assert out[0] == "[True, 'OSError 19', True]"
    assert out[1] == "2"
    assert out[2] == "[True, True, True]"  # back: powered on anew, set up again
    assert out[3] == "ValueError crc True"
    assert out[4] == "OSError 19"  # no presence pulse at all


def test_rom_from_config_and_a_probe_found_later(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
drv, cfg = bus(1, 9, rom='28ff641e8216c3a5')
print([d.name for d in drv], err(drv[0].read())[:7])
s = {'type': 'ds18b20', 'bits': 9}
cfg = {'pins': {'onewire': 4}, 'sensors': [s]}
ow = simkit.onewire(4, {'pins': {}, 'sensors': []})
ds._ow.clear(); ds._ow[4] = ow
drv = ds.probes(s, cfg, simkit, lambda m: print('log', m))
print([d.name for d in drv], err(drv[0].read()))
ow.plug(bytes(bytearray([0x28, 1, 2, 3, 4, 5, 6, ds.crc8(b'\\x28\\x01\\x02\\x03\\x04\\x05\\x06', 7)])))
print(err(drv[0].read())[:7], drv[0].rom.hex()[:14])
""")
    assert out[0] == "['ds18b20_c3a5'] temp_c="  # the probe config names by its ROM
    assert out[1] == "['ds18b20'] OSError 19"  # none answers yet: reported, searched again
    assert out[2] == "temp_c= 28010203040506"  # plugged in later: found and read


# soil, ADC ----------------------------------------------------------------------------------

def test_soil_calibration_and_clamping(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
import drv_kit
s = {'type': 'soil', 'pin': 1, 'dry': 3400, 'wet': 1500}
d = drv_kit.Kit('soil', simkit.adc(s), s)
for n in (2450, 3400, 1500, 3900, 1000, 2000, 4095):
    simkit.X['soil'] = n; print(err(d.read()), d.err)
s2 = {'type': 'soil', 'pin': 1}
simkit.X['soil'] = 2000; print(err(drv_kit.Kit('soil', simkit.adc(s2), s2).read()))
simkit.X.pop('soil', None); m = run(d.read()); print(1500 < m['soil_raw'] < 3400, 0 < m['moisture_pct'] < 100)
""")
    assert out[0] == "moisture_pct=50.0 soil_raw=2450 None"
    assert out[1] == "moisture_pct=0.0 soil_raw=3400 None"
    assert out[2] == "moisture_pct=100.0 soil_raw=1500 None"
    assert out[3] == "moisture_pct=0 soil_raw=3900 clamped"  # drier than in air: 0, flagged
    assert out[4] == "moisture_pct=100 soil_raw=1000 clamped"  # never 126 %
    assert out[5] == "moisture_pct=73.7 soil_raw=2000 None"  # the flag clears
    assert out[6] == "ValueError range None"  # full scale
    assert out[7] == "soil_raw=2000"  # uncalibrated: the raw count, to calibrate with
    assert out[8] == "True True"


def test_adc_channel_with_a_linear_scale(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
import drv_kit
g = {'type': 'adc', 'pin': 3, 'name': 'gas', 'metric': 'gas_raw'}
v = {'type': 'adc', 'pin': 2, 'metric': 'vbat_v', 'scale': 0.0016, 'offset': 0.1}
dg, dv = drv_kit.Kit('adc', simkit.adc(g), g), drv_kit.Kit('adc', simkit.adc(v), v)
simkit.X['gas'] = 812; simkit.X['adc'] = 2500
print(err(dg.read()), err(dv.read()), dv.name)
faults({'gas': 'stuck'}); a = run(dg.read())['gas_raw']; simkit.X.pop('gas', None)
print(a == run(dg.read())['gas_raw'])
""")
    assert out[0] == "gas_raw=812 vbat_v=4.1 adc2"
    assert out[1] == "True"  # stuck: the same count again (the sampler flags it after 5)


# BH1750, HC-SR04 ------------------------------------------------------------------------------

def test_bh1750_power_on_continuous_mode_and_lux(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
import drv_kit
class H: _cfg = {'sensors': [{'type': 'bh1750', 'addr': 0x23}], 'pins': {}}
bus = simkit.i2c(H())
d = drv_kit.Kit('bh1750', bus, {'type': 'bh1750', 'addr': 0x23})
print(simkit._r[1][0x23][1:3])
simkit.X['bh1750'] = 0x8390; t = time.ticks_ms(); print(err(d.read()), time.ticks_diff(time.ticks_ms(), t) >= 180)
print(simkit._r[1][0x23][1:3])
simkit.X['bh1750'] = 1000; time.sleep_ms(130); print(err(d.read()))
simkit.X['bh1750'] = 0xFFFF; time.sleep_ms(130); print(err(d.read()))
faults({'bh1750': 'nack'}); print(err(d.read()), simkit._r[1][0x23][1:3])
faults({}); simkit.X['bh1750'] = 1; print(err(d.read()), simkit._r[1][0x23][1:3])
bus.writeto(0x23, b'\\x01\\x20'); time.sleep_ms(130); print(bus.readfrom(0x23, 2), simkit._r[1][0x23][1:3])
""")
    assert out[0] == "[0, 0]"  # powered down at start
    # datasheet example: high byte 1000_0011, low byte 1001_0000 -> 33680 / 1.2 = 28067 lx
    assert out[1] == "lux=28066.7 True"  # and the first read waited the 180 ms
    assert out[2] == "[1, 16]"  # Power On, then Continuously H-Resolution Mode (0x10)
    assert out[3] == "lux=833.3"
    assert out[4] == "ValueError range"
    assert out[5] == "OSError 19 [0, 0]"  # unplugged: back in, it has powered on anew
    assert out[6] == "lux=0.8 [1, 16]"  # so the driver sets it up again
    assert out[7] == "b'\\x00\\x01' [0, 0]"  # one time mode: powers down after the measurement


def test_hcsr04_echo_width_timeout_and_range(micropython_bin: str, repo_root: Path) -> None:
    out = _mp(micropython_bin, repo_root, """
import drv_kit
s = {'type': 'hcsr04', 'trig': 5, 'echo': 6}
d = drv_kit.Kit('hcsr04', simkit.ping(s), s)
for us in (1160, 5800, 23200, 38000, 60, -2):
    simkit.X['hcsr04'] = us; print(err(d.read()))
simkit.X.pop('hcsr04', None)
t = time.ticks_ms(); run(d.read()); run(d.read()); print(time.ticks_diff(time.ticks_ms(), t) >= 60)
faults({'hcsr04': 'range'}); print(err(d.read()))
""")
    assert out[:6] == ["distance_cm=20.0", "distance_cm=100.0", "distance_cm=400.0",
                       "ValueError timeout",  # no echo back within 25 ms (the module holds ~38 ms)
                       "ValueError range", "OSError 19"]  # 1 cm; echo never rose: no module
    assert out[6] == "True"  # 60 ms between triggers
    assert out[7] == "ValueError timeout"


# config --------------------------------------------------------------------------------------

CHECK = """
import sys, json
sys.path.insert(0, %r)
import config
for c in %s:
    open('config.json', 'w').write(json.dumps(c))
    try:
        s = config.load('config.json')['sensors']; print('OK', json.dumps(s))
    except config.ConfigError as e:
        print('ERR', e)
"""


def _check(micropython_bin: str, repo_root: Path, tmp_path: Path, sensors: list[list[dict[str, Any]]]) -> list[str]:
    cfgs = [board_config("127.0.0.1", 1, "fw-kit", sensors=s) for s in sensors]
    done = subprocess.run([micropython_bin, "-c", CHECK % (str(repo_root / "firmware" / "lib"), json.dumps(cfgs))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


BAD = [
    ([{"type": "dht20", "addr": 56}, {"type": "bh1750", "addr": 35}, {"type": "soil"}], "sensors[2].pin"),
    ([{"type": "soil", "pin": 1, "dry": 3000}], "sensors[0].wet"),
    ([{"type": "soil", "pin": 1, "wet": 1300}], "sensors[0].dry"),
    ([{"type": "soil", "pin": 1, "dry": 3000, "wet": 3000}], "sensors[0].wet"),
    ([{"type": "soil", "pin": 1, "dry": 70000, "wet": 1}], "sensors[0].dry"),
    ([{"type": "adc", "name": "gas"}], "sensors[0].pin"),
    ([{"type": "adc", "pin": 3, "metric": "Gas ppm"}], "sensors[0].metric"),
    ([{"type": "adc", "pin": 3, "scale": "2"}], "sensors[0].scale"),
    ([{"type": "hcsr04", "trig": 5}], "sensors[0].echo"),
    ([{"type": "hcsr04", "echo": 6, "trig": 60}], "sensors[0].trig"),
    ([{"type": "bh1750"}], "sensors[0].addr"),
    ([{"type": "ds18b20", "rom": "28FF641E8216C3A5"}], "sensors[0].rom"),
    ([{"type": "ds18b20", "bits": 8}], "sensors[0].bits"),
    ([{"type": "moisture", "pin": 1}], "sensors[0].type"),
]


@pytest.mark.parametrize(("sensors", "key"), BAD, ids=[f"{k}-{i}" for i, (_, k) in enumerate(BAD)])
def test_config_refuses_a_kit_entry_naming_the_key(sensors: list[dict[str, Any]], key: str, micropython_bin: str,
                                                   repo_root: Path, tmp_path: Path) -> None:
    (line,) = _check(micropython_bin, repo_root, tmp_path, [sensors])
    assert line.startswith("ERR config.json: key '" + key + "'"), line


def test_config_takes_what_provision_writes(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    kit = [{"type": "dht20", "addr": 56}, {"type": "bh1750", "addr": 35}, {"type": "ds18b20"},
           {"type": "soil", "pin": 1, "dry": 2900, "wet": 1200}, {"type": "adc", "pin": 2, "name": "ldr"},
           {"type": "adc", "pin": 3, "name": "gas"}, {"type": "hcsr04", "trig": 5, "echo": 6},
           {"type": "soil", "pin": 7},
           {"type": "adc", "pin": 8, "name": "2nd-ldr", "scale": 0.5, "offset": -3}]
    (line,) = _check(micropython_bin, repo_root, tmp_path, [kit])
    assert line.startswith("OK "), line
    got = json.loads(line[3:])
    assert [e.get("metric") for e in got if e["type"] == "adc"] == ["ldr_raw", "gas_raw", "adc_2nd_ldr_raw"]
    assert got[2]["bits"] == 12 and got[6]["trig"] == 5 and got[6]["echo"] == 6 and "dry" not in got[7]


def test_the_smart_garden_example_passes_the_checker(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    example = json.loads((repo_root / "firmware" / "examples" / "smart-garden.json").read_text())
    assert [s["type"] for s in example["sensors"]] == ["dht20", "soil", "bh1750"] and example["board"] == "yolo-uno"
    code = CHECK.replace("for c in %s:", "for c in [json.load(open(%r))]:") % (
        str(repo_root / "firmware" / "lib"), str(repo_root / "firmware" / "examples" / "smart-garden.json"))
    done = subprocess.run([micropython_bin, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.stdout.startswith("OK "), done.stdout + done.stderr
    assert "ignoring" not in done.stdout  # every key of it is one the firmware knows


# whole boards ---------------------------------------------------------------------------------

def _serial_board(micropython_bin: str, repo_root: Path, flash: Path, cfg: dict[str, Any],
                  faults: dict[str, Any] | None = None, heap: str = "64K") -> tuple[str, list[dict[str, Any]]]:
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "config.json").write_text(json.dumps(cfg))
    if faults:
        (flash / "faults.json").write_text(json.dumps(faults))
    env = {"SEN_MPY": str(build_mpy(micropython_bin, repo_root))}
    done = subprocess.run([micropython_bin, "-X", f"heapsize={heap}", str(repo_root / "firmware" / "main.py")],
                          cwd=flash, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0 and "MemoryError" not in out, out[-3000:]
    envs = [json.loads(ln[5:].rsplit(" ", 1)[0]) for ln in out.splitlines() if ln.startswith("SEN1 {")]
    return out, [e for e in envs if "r" in e]


def _peak(out: str) -> int:
    m = re.search(r"^Sen done: .* peak heap (\d+) B", out, re.M)
    assert m, out
    return int(m.group(1))


def _garden(**over: Any) -> dict[str, Any]:
    example = json.loads((Path(__file__).resolve().parents[2] / "firmware" / "examples" /
                          "smart-garden.json").read_text())
    cfg = board_config("127.0.0.1", 1, "garden-sim", transport="serial", ack="puback", interval_ms=50,
                       max_readings=60, board=example["board"], pins=example["pins"], sensors=example["sensors"])
    cfg.update(over)
    return cfg


def test_smart_garden_board_in_64k(micropython_bin: str, repo_root: Path, tmp_path: Path,
                                   record_property: Any) -> None:
    out, envs = _serial_board(micropython_bin, repo_root, tmp_path / "garden", _garden())
    readings = [r for e in envs for r in e["r"]]
    assert len(readings) == 60 and {r["s"] for r in readings} == {"dht20", "soil", "bh1750"}
    for r in readings:
        assert set(r["m"]) == {"dht20": {"temp_c", "rh_pct"}, "soil": {"soil_raw", "moisture_pct"},
                               "bh1750": {"lux"}}[r["s"]]
    assert all(0 <= r["m"]["moisture_pct"] <= 100 for r in readings if r["s"] == "soil")
    assert not [k for e in envs for k in e.get("d", {}) if k.startswith("e_")], envs[-1]
    peak = _peak(out)
    record_property("peak_heap_bytes", peak)
    print(f"\npeak heap in use, smart-garden serial board at -X heapsize=64K: {peak} B")
    assert peak < 58 * 1024, peak


def _frames(text: str) -> list[dict[str, Any]]:
    envs = [json.loads(ln[5:].rsplit(" ", 1)[0]) for ln in text.splitlines() if ln.startswith("SEN1 {")]
    return [e for e in envs if "r" in e]


def test_kit_board_faults_and_probes(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    """Every kit sensor on one board, a DS18B20 pin with three probes. Then, while it runs, one
    probe is unplugged, the soil probe reads full scale and no echo comes back: each is reported
    as its e_<name> and the others keep sampling."""
    sensors = [{"type": "ds18b20", "probes": 3, "bits": 9}, {"type": "soil", "pin": 1, "dry": 3400, "wet": 1500},
               {"type": "bh1750", "addr": 35, "name": "light"}, {"type": "hcsr04", "trig": 5, "echo": 6},
               {"type": "adc", "pin": 3, "name": "gas"}]
    b = Board(micropython_bin, repo_root, tmp_path / "kit", heap="128K")
    b.write_config(_garden(sensors=sensors, max_readings=0, interval_ms=200, batch_max=7))
    b.start()
    try:
        b.wait_line(r"^SEN1 \{.*ds18b20_.*ds18b20_.*ds18b20_", 20)
        before = len(_frames(b.output()))
        names = {r["s"] for e in _frames(b.output()) for r in e["r"]}
        probes = sorted(n for n in names if n.startswith("ds18b20_"))
        assert len(probes) == 3 and names == {*probes, "soil", "light", "hcsr04", "gas"}, names
        assert re.search(r"ds18b20 on GPIO 4: 3 probes( [0-9a-f]{16}){3}", b.output()), b.output()[-2000:]
        gone = probes[1]
        (b.flash / "faults.json").write_text(json.dumps({gone: "nack", "soil": "range", "hcsr04": "range"}))
        # (the failing samplers never finish: the board would not reach max_readings' end)
        wait_for(lambda: len(_frames(b.output())) >= before + 6, 30, "envelopes after the faults")
    finally:
        b.kill()
    late = _frames(b.output())[before + 2:]
    assert late, b.output()[-3000:]
    assert {r["s"] for e in late for r in e["r"]} == {probes[0], probes[2], "light", "gas"}
    diag = late[-1]["d"]
    assert diag[f"e_{gone}"] == "nack" and diag["e_soil"] == "range" and diag["e_hcsr04"] == "timeout", diag
    assert not [k for k in diag if k.startswith("e_") and k not in (f"e_{gone}", "e_soil", "e_hcsr04")], diag


def test_default_board_and_smart_garden_over_mqtt(mosquitto: Any, micropython_bin: str, repo_root: Path,
                                                  tmp_path: Path, record_property: Any) -> None:
    """The same MQTT run (puback, 60 readings, 64K) for the default board and the smart-garden one."""
    peaks = {}
    for name, over in (("default", {}), ("garden", {"board": "yolo-uno", "pins": _garden()["pins"],
                                                   "sensors": _garden()["sensors"]})):
        b = Board(micropython_bin, repo_root, tmp_path / name, heap="64K")
        b.write_config(board_config(mosquitto.host, mosquitto.port, f"fwkit-{name}", ack="puback",
                                    interval_ms=20, max_readings=60, **over))
        code = b.run(timeout=60)
        assert code == 0 and "MemoryError" not in b.output(), b.output()[-3000:]
        peaks[name] = _peak(b.output())
    record_property("peak_heap_bytes", peaks["garden"])
    print(f"\npeak heap in use over MQTT at -X heapsize=64K: default board {peaks['default']} B, "
          f"smart garden {peaks['garden']} B")
    assert peaks["garden"] < 60 * 1024, peaks
