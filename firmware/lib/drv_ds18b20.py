# Sen firmware: Maxim DS18B20 1-wire temperature probes, several on one pin, one driver
# object per probe (probes() makes them: each probe samples, fails and is named on its own).
# The bus (hal_io.onewire, or the simulated one) gives time slots: reset() -> True when a
# device answered with a presence pulse, writebit(b), readbit() -> 0/1. On it: bytes LSB
# first, the ROM search (Maxim AN187), Match ROM, the DS18B20's Convert T (0x44) and
# Read/Write Scratchpad (0xBE/0x4E), and the Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1,
# reflected 0x8C, init 0) over every ROM code and scratchpad.
# A read: Match ROM, Convert T, wait the conversion time of the resolution (750 ms at 12
# bits, halved per bit less: 375, 187.5, 93.75 ms), Match ROM, Read Scratchpad: 9 bytes,
# the 9th the CRC of the first 8; temperature = the signed 16-bit word of bytes 0-1 / 16,
# its undefined low bits cleared below 12 bits. Externally powered probes only (no strong
# pull-up for parasite power).
# Errors: no presence pulse, or a scratchpad of all ones (nobody pulled the wire low: the
# probe is gone while others still answer) -> OSError 19, as a missing I2C device; a bad
# CRC -> ValueError("crc"); 0x0550 = 85 degC, the power-on value (the probe reset, e.g. on a
# power dip, and never converted) -> ValueError("poweron"); beyond -55..125 degC "range".
import asyncio
import binascii

from micropython import const

_MATCH_ROM = const(0x55)
_SEARCH_ROM = const(0xF0)
_CONVERT_T = const(0x44)
_READ_SP = const(0xBE)
_WRITE_SP = const(0x4E)
_POWER_ON = const(0x0550)  # 85 degC
_MAX_PROBES = const(8)  # per pin, for the search


def crc8(data, n):
    c = 0
    for i in range(n):
        b = data[i]
        for _ in range(8):
            c = (c >> 1) ^ 0x8C if (c ^ b) & 1 else c >> 1
            b >>= 1
    return c


def write(ow, data):
    for b in data:
        for i in range(8):
            ow.writebit(b >> i & 1)


def read(ow, n):
    out = bytearray(n)
    for k in range(n):
        b = 0
        for i in range(8):
            b |= ow.readbit() << i
        out[k] = b
    return out


# Maxim AN187: every ROM code on the pin whose CRC checks, in the search's order. Each pass
# reads a bit and its complement per ROM bit (0 1 / 1 0: all agree; 0 0: a discrepancy;
# 1 1: nobody answers) and writes the direction taken; a pass takes 1 at the last
# discrepancy where it took 0, and 0 at newer ones.
def search(ow):
    roms = []  # type: list
    rom = bytearray(8)
    last = 0  # bit number (1..64) of the last discrepancy where 0 was taken
    while len(roms) < _MAX_PROBES and ow.reset():
        write(ow, (_SEARCH_ROM,))
        zero = 0
        for i in range(64):
            b = ow.readbit()
            if ow.readbit():  # the complement
                if b:  # nobody answered: a probe left mid-search
                    return roms
                d = 0
            elif b:
                d = 1
            else:  # both values present
                d = rom[i >> 3] >> (i & 7) & 1 if i + 1 < last else int(i + 1 == last)
                if not d:
                    zero = i + 1
            rom[i >> 3] = rom[i >> 3] & ~(1 << (i & 7)) | d << (i & 7)
            ow.writebit(d)
        if crc8(rom, 7) == rom[7]:
            roms.append(bytes(rom))
        last = zero
        if not last:
            break
    return roms


class DS18B20:
    raw = None  # never "stuck": a probe in still water or soil reads the same for minutes
    addr = 0

    # rom: the probe's 8-byte ROM code, or None: the first probe a search finds (at reads)
    def __init__(self, ow, rom, bits=12):
        self.ow = ow
        self.rom = rom
        self.bits = bits
        self.name = "ds18b20"
        self._set = False  # resolution written since the probe last powered on

    def _select(self):
        ow = self.ow
        if not ow.reset():
            raise OSError(19)
        write(ow, (_MATCH_ROM,))
        write(ow, self.rom)

    async def read(self):
        ow = self.ow
        if self.rom is None:
            r = [x for x in search(ow) if x[0] == 0x28]
            if not r:
                raise OSError(19)
            self.rom = r[0]
        bits = self.bits
        if not self._set:  # TH, TL (alarms, unused), config: resolution in bits 6:5
            self._select()
            write(ow, (_WRITE_SP, 0x4B, 0x46, (bits - 9) << 5 | 0x1F))
            self._set = True
        self._select()
        write(ow, (_CONVERT_T,))
        await asyncio.sleep_ms((750 >> (12 - bits)) + 1)
        self._select()
        write(ow, (_READ_SP,))
        sp = read(ow, 9)
        if min(sp) == 0xFF:
            self._set = False
            raise OSError(19)
        if crc8(sp, 8) != sp[8]:
            raise ValueError("crc")
        t = sp[0] | sp[1] << 8
        if t == _POWER_ON:
            self._set = False  # it reset: its resolution is the EEPROM's again
            raise ValueError("poweron")
        n = 9 + (sp[4] >> 5 & 3)  # the resolution the probe converted at
        if n != bits:
            self._set = False
        t = (t - (t & 0x8000) * 2) & ~((1 << (12 - n)) - 1)
        if not -880 <= t <= 2000:  # -55..125 degC in 1/16 degC
            raise ValueError("range")
        return {"temp_c": t / 16}


_ow = {}  # type: dict  # 1-wire pin -> its bus, one for all of its probes


# config entry s -> a driver per probe on its pin (io: hal_io, or simkit on the unix port):
# the probe config names by its rom, else every probe a search finds that no other entry
# names by its rom (one driver that searches at its reads when none answers yet). Each
# probe its own name: config's for its one probe, else <name, default ds18b20>_<the last 4
# hex digits of its ROM as the log line shows it> (all 16 when two probes share those 4).
def probes(s, cfg, io, log):
    pin = s.get("pin", cfg["pins"].get("onewire"))
    if pin is None:
        raise ValueError("no 1-wire pin (pins.onewire)")
    ow = _ow[pin] = _ow.get(pin) or io.onewire(pin, cfg)
    name = s.get("name")
    if s.get("rom"):
        roms = [binascii.unhexlify(s["rom"])]  # type: list
    else:
        mine = [binascii.unhexlify(x["rom"]) for x in cfg["sensors"] if x.get("rom")]
        roms = [r for r in search(ow) if r[0] == 0x28 and r not in mine]
        log("ds18b20 on GPIO %d: %d probes %s" % (pin, len(roms), " ".join(
            [binascii.hexlify(r).decode() for r in roms])))
    out = []
    for r in roms or [None]:
        d = DS18B20(ow, r, s["bits"])
        h = binascii.hexlify(r).decode() if r else ""
        n = name or "ds18b20"
        d.name = "%s_%s" % (n, h[-4:]) if h and not (name and len(roms) == 1) else n
        out.append(d)
    for d in out:
        if [x.name for x in out].count(d.name) > 1:
            d.name = "%s_%s" % (name or "ds18b20", binascii.hexlify(d.rom).decode())
    return out
