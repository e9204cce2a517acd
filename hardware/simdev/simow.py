# Sen simulated DS18B20 probes on a 1-wire pin, in time slots (simkit.py describes them and
# their faults; simkit.onewire loads this module only for a board with DS18B20s).
import time

import simdev
from drv_ds18b20 import crc8
from simkit import X, _rand

_POR = b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x1c"  # the power-on scratchpad: 85 degC, 12 bits


def _fault(p):  # a probe's fault: by its name, or for all DS18B20s
    return simdev.F.get(p[3]) or simdev.F.get("ds18b20")


# bus states: 0 a ROM command, 1 search, 2 match, 3 read ROM, 4 a function command,
# 5 read scratchpad, 6 write scratchpad, 7 converting, 8 power supply, 9 idle till a reset
class Bus:
    def __init__(self):
        self.p = []  # probes: [ROM, scratchpad, conversion start or None, name, powered, n]
        self.a = []  # the probes still following the master since the reset
        self.st = 9
        self.i = self.v = 0
        self.out = []

    def plug(self, rom):
        self.p.append([rom, bytearray(_POR), None, "ds18b20_%02x%02x" % (rom[6], rom[7]), True,
                       len(self.p)])

    def reset(self):
        for p in self.p:
            self._done(p)
            if _fault(p) == "nack":
                p[4] = False
            elif not p[4]:  # plugged back in: powered on anew
                p[1][:] = _POR
                p[2] = None
                p[4] = True
        self.a = [p for p in self.p if p[4]]
        self.st = 0
        self.i = self.v = 0
        return bool(self.a)

    # a conversion that has had its time: the temperature register gets the new value
    def _done(self, p):
        sp, t0 = p[1], p[2]
        r = sp[4] >> 5 & 3  # resolution: 9 + r bits
        if t0 is None or time.ticks_diff(time.ticks_ms(), t0) < 750 >> (3 - r):
            return
        p[2] = None
        f = _fault(p)
        if f == "stuck":
            return
        v = X.get(p[3])
        if f == "range":
            v = 0x07FF  # the 12-bit register's full scale, 127.9 degC
        elif v is None:  # the air's temperature, 2 degC less, 0.5 degC apart per probe;
            v = int((simdev.phys()[0] - 2) * 16) + 8 * p[5] + _rand(1)  # the bits below the
            v = v & ~((8 >> r) - 1) | _rand(7) & 7 >> r  # resolution are undefined: any value
        v &= 0xFFFF
        sp[0] = v & 0xFF
        sp[1] = v >> 8
        sp[8] = crc8(sp, 8)

    def _cmd(self, c):
        st, a = self.st, self.a
        self.i = self.v = 0
        self.st = 9
        if st == 0:
            self.st = {0xF0: 1, 0x55: 2, 0x33: 3, 0xCC: 4}.get(c, 9)
            if c == 0xEC:  # alarm search: no probe has an alarm
                self.a = []
                self.st = 1
        elif c == 0x44:
            for p in a:
                if _fault(p) == "poweron":
                    p[1][:] = _POR  # its supply dipped: reset, no conversion
                else:
                    p[2] = time.ticks_ms()
            self.st = 7
        elif c == 0xBE:
            self.out = []
            for p in a:
                self._done(p)
                o = bytearray(p[1])
                if _fault(p) == "crc":
                    o[8] ^= 0x5A
                self.out.append(o)
            self.st = 5
        elif c == 0x4E:
            self.st = 6
        elif c == 0xB4:
            self.st = 8

    def writebit(self, b):
        st, i = self.st, self.i
        b &= 1
        if st in (0, 4):  # a command byte, LSB first
            self.v |= b << i
            self.i = i + 1
            if i == 7:
                self._cmd(self.v)
        elif st == 1 and i % 3 == 2 or st == 2:  # the direction / the ROM bit of Match ROM
            k = i // 3 if st == 1 else i
            self.a = [p for p in self.a if p[0][k >> 3] >> (k & 7) & 1 == b]
            self.i = i + 1
            if k == 63:
                self.st = 4
                self.i = 0
        elif st == 6:  # TH, TL, config (only its resolution bits 6:5 are kept)
            self.v |= b << i
            self.i = i + 1
            if i == 23:
                for p in self.a:
                    sp = p[1]
                    sp[2], sp[3], sp[4] = self.v & 0xFF, self.v >> 8 & 0xFF, self.v >> 16 & 0x60 | 0x1F
                    sp[8] = crc8(sp, 8)
                self.st = 9
        else:
            self.st = 9  # a write the probes did not expect: they wait for a reset

    def readbit(self):
        st, i, v = self.st, self.i, 1
        if st == 1 and i % 3 < 2 or st == 3:  # search: the bit, then its complement; read ROM
            k = i // 3 if st == 1 else i
            for p in self.a:
                v &= (p[0][k >> 3] >> (k & 7) & 1) ^ (i % 3 if st == 1 else 0)
            self.i = i + 1
            if st == 3 and i == 63:
                self.st = 4
                self.i = 0
        elif st == 5 and i < 72:
            for o in self.out:
                v &= o[i >> 3] >> (i & 7) & 1
            self.i = i + 1
        elif st == 7:  # 0 while a probe converts
            for p in self.a:
                self._done(p)
                if p[2] is not None:
                    v = 0
        elif st != 8 and st != 5:
            self.st = 9
        return v


def bus(pin, cfg):
    import binascii
    b = Bus()
    for s in cfg["sensors"]:
        if s["type"] == "ds18b20" and s.get("pin", cfg["pins"].get("onewire")) == pin:
            if s.get("rom"):
                b.plug(binascii.unhexlify(s["rom"]))
                continue
            for _ in range(s.get("probes", 1)):
                rom = bytearray(8)
                rom[0] = 0x28
                for k in range(1, 7):
                    rom[k] = _rand(127) & 0xFF
                rom[7] = crc8(rom, 7)
                b.plug(bytes(rom))
    return b
