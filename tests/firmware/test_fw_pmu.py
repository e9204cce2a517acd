"""The modem's supply on LilyGO's T-SIM7080G-S3: firmware/lib/pmu_axp2101.py through
modem_io.Wires.pulse() on the real MicroPython VM, against an AXP2101 modelled at its
registers behind a stand-in `machine` module (SoftI2C, Pin): the unix port has none. The
rails are switched on before the first PWRKEY, in their own bits only, once; a PMU that does
not answer, or is another chip, is said on the console and tried again at the next power-on,
and PWRKEY is pulsed all the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.firmware

# An AXP2101 at 0x34 as the bus sees it: a register file (the other bits of each register set,
# to see they are kept), its writes in order; CHIP None: nothing answers (ENODEV)
MACHINE = """
CHIP = 0x4A
REGS = {0x03: 0x4A, 0x80: 0x01, 0x84: 0x92, 0x90: 0x01, 0x96: 0xA5}
WRITES = []
EVENTS = []  # PWRKEY and register writes, in order
class Pin:
    OUT = 1
    def __init__(self, n, *a, **k):
        self.n = n
    def value(self, v):
        EVENTS.append(("pin", self.n, v))
class SoftI2C:
    def __init__(self, scl, sda, freq):
        self.pins = (scl.n, sda.n)
    def readfrom_mem(self, addr, reg, n):
        if CHIP is None or addr != 0x34:
            raise OSError(19)
        REGS[0x03] = CHIP
        return bytes([REGS.get(reg, 0)])
    def writeto_mem(self, addr, reg, b):
        if CHIP is None or addr != 0x34:
            raise OSError(19)
        WRITES.append((reg, b[0]))
        EVENTS.append(("reg", reg, b[0]))
        REGS[reg] = b[0]
"""

BODY = """
import sys, json
sys.path.insert(0, %r)
sys.path.insert(1, %r)
import machine
machine.CHIP = %s
import modem_io
w = modem_io.Wires()
w._a = 1
w.p = machine.Pin(41)
w.pmu = {"chip": "axp2101", "sda": 15, "scl": 7}
w.pulse(1)
first = list(machine.WRITES)
w.pulse(1)
print("RESULT " + json.dumps({"regs": {"%%02x" %% k: v for k, v in machine.REGS.items()}, "first": first,
                             "writes": len(machine.WRITES), "events": machine.EVENTS, "kept": w.pmu is not None,
                             "loaded": "pmu_axp2101" in sys.modules}))
"""


def _run(micropython_bin: str, repo_root: Path, tmp_path: Path, chip: str) -> tuple[dict[str, Any], str]:
    (tmp_path / "machine.py").write_text(MACHINE)
    code = BODY % (str(tmp_path), str(repo_root / "firmware" / "lib"), chip)
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[7:]), done.stdout


def test_the_modem_rails_go_on_before_the_first_pwrkey_in_their_own_bits_once(
        micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r, out = _run(micropython_bin, repo_root, tmp_path, "0x4A")
    # DC3 at 3000 mV (code 102, the DVM bit kept) before DC3 on (DC1 kept on); BLDO1 at 3300 mV
    # (code 28, bits 7-5 kept) before BLDO1 on (ALDO1 kept on)
    assert r["first"] == [[0x84, 0x80 | 102], [0x80, 0x05], [0x96, 0xA0 | 28], [0x90, 0x11]]
    assert r["writes"] == 4, "the second power-on switched nothing again"
    assert [e[0] for e in r["events"]] == ["reg"] * 4 + ["pin"] * 4, "the rails first, then PWRKEY, twice"
    assert [e[2] for e in r["events"][4:]] == [1, 0, 1, 0]  # active high (pwrkey_active 1)
    assert not r["kept"] and not r["loaded"], "done once, and its module dropped"
    assert "cell: modem supply on (axp2101)" in out


@pytest.mark.parametrize(("chip", "says"), [
    ("0x00", "chip id 0x00 at 0x34: not an AXP2101"),
    ("None", "OSError(19"),
])
def test_a_pmu_that_is_not_there_is_said_and_tried_again_and_pwrkey_still_pulsed(
        micropython_bin: str, repo_root: Path, tmp_path: Path, chip: str, says: str) -> None:
    r, out = _run(micropython_bin, repo_root, tmp_path, chip)
    assert r["first"] == [] and r["writes"] == 0
    assert r["kept"] and not r["loaded"]
    assert out.count("cell: modem supply not switched on (axp2101, SDA 15, SCL 7)") == 2, out
    assert says in out
    assert [e[0] for e in r["events"]] == ["pin"] * 4  # both pulses went to PWRKEY
