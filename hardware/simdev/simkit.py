# Sen simulated devices of the kit (hardware/WIRING.md), at the level the bus carries them:
# DS18B20 probes on a 1-wire pin, the BH1750 light sensor on the simulated I2C bus, ADC
# inputs (a capacitive soil probe, any analog module) and an HC-SR04's echo. MicroPython
# code, with the calls of firmware/lib/hal_io.py (the ESP32's pins), which the firmware's
# sensors_setup takes from here on the unix port, only on a board whose config names one of
# these sensors (simdev.py keeps the default board's devices, and this module's I2C bus
# hands every other address to it). Written lean, like simdev: no float constants, few
# names, one function for the bus.
#   faults   simdev.F (faults.json), by the device's name or its type: "nack" missing, "crc"
#            a corrupt CRC byte (DS18B20; the others have none), "stuck" repeats its last
#            value, "range" full scale; for a DS18B20 also "poweron" (it resets at every Convert
#            T, as a probe whose supply dips: it keeps the 85 degC power-on value). A probe's
#            name is ds18b20_<last 4 hex digits of its ROM>; an analog input's or a BH1750's
#            is config's name, else its type.
#   X        X[name] = raw puts a raw value in place of the physics (a DS18B20's 16-bit
#            temperature word, a BH1750's count, an ADC count, an echo width in us; a negative
#            width is what time_pulse_us returns); without it, the physics again.
#   1-wire   onewire(pin, cfg) -> a Bus with reset() -> presence, writebit(b), readbit(), in
#            time slots: every probe hears every slot and follows the master through the ROM
#            commands (Search F0: per ROM bit its value, its complement, the master's
#            direction; Match 55; Skip CC; Read 33) and the function commands (Convert T 44:
#            read slots give 0 until the conversion time of the resolution, 750 ms at 12 bits,
#            has passed, then the temperature register holds the new value; Read Scratchpad
#            BE: 9 bytes, the 9th the CRC-8; Write Scratchpad 4E: TH, TL, config; Read Power
#            Supply B4: externally powered; Copy 48 and Recall B8 do nothing here). The wire
#            is open drain: probes sending at once give the AND of their bits. Probes: those
#            config names by rom, and `probes` (default 1) more per unnamed entry, their
#            ROMs drawn from the seed. A probe that comes back (a nack fault cleared) powers
#            on anew: 85 degC, 12 bits.
#   BH1750   I2C opcodes Power Down 00, Power On 01, Reset 07, continuous H 10 / H2 11 / L 13,
#            one time 20 / 21 / 23 (then Power Down), MTreg 40-47 / 60-7F; a read gives the
#            data register, high byte first, updated when a measurement ends (120 ms H, 16 ms
#            L at MTreg 69). Daylight: 0 at night, up to ~20000 lx at 12:00 UTC.
#   ADC      adc(s) -> a function: a 12-bit count with noise (+-24); a missing module leaves
#            the pin floating near ground. Soil: a probe reading 3400 in air and 1500 in
#            water, its soil between 30 and 70 % over two hours. Others: 800..2200.
#   echo     ping(s) -> a function(timeout_us): the echo width in us, a level 50..110 cm away;
#            -1 when it has not ended within the timeout ("range": nothing in range), -2
#            when it never began ("nack").
import sys
import time

import simdev

F = simdev.F
X = {}  # name -> a forced raw value (tests); absent: the physics
_r = [0, {}]  # xorshift16 state (from simdev's seed at the first draw); the BH1750s by address:
# [name, powered, mode, MTreg, measurement start, data register]


def _rand(k):  # -> -k..k
    x = _r[0] or simdev._st[0] or 0xACE1
    x ^= (x << 7) & 0xFFFF
    x ^= x >> 9
    x ^= (x << 8) & 0xFFFF
    _r[0] = x
    return x % (2 * k + 1) - k


def _wave(period, shift=0):  # -> -1..1 over period s of the host clock (+ a clock jump)
    import math
    o = F.get("clock_offset_ms", 0)
    s = time.time() + (o // 1000 if isinstance(o, int) else 0) - shift
    return math.sin(2 * math.pi * (s % period) / period)


def onewire(pin, cfg):  # the DS18B20s: their own module, loaded for them only
    import simow
    return simow.bus(pin, cfg)


def i2c(hal):
    for s in hal._cfg["sensors"]:
        if s["type"] == "bh1750":
            _r[1].setdefault(s["addr"], [s.get("name") or "bh1750", 0, 0, 69, 0, 0])
    return sys.modules[__name__]


# The I2C bus, as simdev's: writeto(addr, data), readfrom(addr, n), readfrom_mem(addr, reg, n)
# all land here; an address without a BH1750 goes on to simdev's bus.
def readfrom_mem(addr, x=None, n=0):
    d = _r[1].get(addr)
    if d is None:
        return simdev.readfrom_mem(addr, x, n)
    f = F.get(d[0]) or F.get("bh1750")
    if f == "nack":
        d[1:] = [0, 0, 69, 0, 0]  # unplugged: back in, it has powered on anew
    if f == "nack" or n:  # (it has no registers to read)
        raise OSError(19)
    t = time.ticks_ms()
    if not isinstance(x, int):  # writeto: opcodes
        for c in bytes(x):
            if c < 2:
                d[1] = c  # Power Down, Power On
            elif c == 0x07 and d[1]:
                d[5] = 0  # Reset: the data register
            elif c in (0x10, 0x11, 0x13, 0x20, 0x21, 0x23):
                d[1], d[2], d[4] = 1, c, t
            elif c >> 3 == 0x08:
                d[3] = d[3] & 0x1F | (c & 7) << 5  # MTreg, high bits
            elif c >> 5 == 0x03:
                d[3] = d[3] & 0xE0 | c & 0x1F  # MTreg, low bits
        return len(x)
    m = d[2]  # readfrom: the data register, once a measurement has ended
    if m and d[1] and time.ticks_diff(t, d[4]) >= (16 if m & 3 == 3 else 120) * d[3] // 69:
        v = X.get(d[0])
        if f == "range":
            d[5] = 0xFFFF
        elif f != "stuck" or not d[5]:
            if v is None:  # lux * 1.2 (x2 in H2), scaled by MTreg; 4 lx steps in L
                v = max(0, _wave(86400, 21600)) * 24000 * d[3] // 69
                v = int(v + v * _rand(10) // 1000) << (m & 3 == 1)
                v &= ~3 if m & 3 == 3 else ~0
            d[5] = min(0xFFFF, max(0, v))
        if m & 0x20:
            d[1] = d[2] = 0  # one time: powers down
        else:
            d[4] = t  # continuous: the next one starts
    return bytes((d[5] >> 8, d[5] & 0xFF)) + bytes(max(0, x - 2))


writeto = readfrom = readfrom_mem


# ADC counts (adc) and echo widths (ping): f(timeout_us) -> the raw value
def adc(s):
    t = s["type"]
    k = s.get("name") or t
    last = [0]

    def f(timeout=0):
        g = F.get(k) or F.get(t)
        v = X.get(k)
        if g == "stuck" and last[0]:
            return last[0]
        if t == "hcsr04":
            if g == "nack" or g == "range":
                return -2 if g == "nack" else -1  # never rose; nothing in range: high ~38 ms
            if v is None:
                v = 58 * (80 + int(30 * _wave(1800))) + _rand(20)
            if v > timeout:
                return -1
        elif g == "range":
            v = 4095
        elif g == "nack":
            v = 12 + _rand(12)  # floating near ground
        elif v is None:  # the ESP32's ADC is noisy: +-24 counts
            v = 3400 - (50 + int(20 * _wave(7200))) * 19 if t == "soil" else 1500 + int(700 * _wave(3600))
            v += _rand(24)
        if t != "hcsr04":
            v = min(4095, max(0, v))
        if v > 0:
            last[0] = v
        return v
    return f


ping = adc
