# Sen firmware: the kit's small sensors (hardware/WIRING.md) in one class, kind = the sensor
# type (the DS18B20 probes: drv_ds18b20). src is the pin primitive (hal_io on an ESP32, the
# simulated device on the unix port) and s the config entry.
#   "soil"    a capacitive soil-moisture probe; src() -> a 12-bit ADC count. The count as
#             soil_raw and, with config's dry (the count in dry air) and wet (in water),
#             moisture_pct = (dry - raw) * 100 / (dry - wet). Beyond the calibration it is
#             clamped to 0..100 (never 130 %) and the sensor flagged "clamped" (err: its
#             e_<name> in diagnostics) while that lasts.
#   "adc"     any analog module (LDR, MQ gas sensor, a battery divider); src() -> a count.
#             config's metric (default <name>_raw) = count * scale + offset, or the count.
#             Both: each reading averages 8 counts (the ESP32's ADC is noisy); a full-scale
#             count (4095: ~3.1 V or more at the pin, the true value unknown) is "range".
#   "bh1750"  ROHM BH1750FVI light sensor, I2C 0x23 (ADDR low) or 0x5C; src: the I2C bus.
#             Opcodes Power On (0x01), then Continuously H-Resolution Mode (0x10): 1 lx steps,
#             a new result every 120 ms (180 ms max) at the default measurement time (MTreg
#             69); a read is two bytes, high first: lux = count / 1.2; 0xFFFF (more than
#             54612 lx) is "range". A sensor that lost power wakes in Power Down: after any
#             bus error the next read sets it up again.
#   "hcsr04"  HC-SR04 style ultrasonic ranger (also the 3.3 V HC-SR04P, RCWL-1601); src(
#             timeout_us) sends the 10 us trigger and -> the echo's width in us, -1 when it
#             had not ended within the timeout, -2 when it never began. The echo is high for
#             the sound's way there and back: distance_cm = us / 58 (the datasheet's formula,
#             ~343 m/s at 20 degC; no temperature correction); 2..400 cm, else "range". No
#             echo back within 25 ms (~430 cm; with nothing in range the module holds echo
#             ~38 ms) is "timeout"; an echo that never rose (no module, unpowered) OSError
#             19, as a missing I2C device. At least 60 ms from one trigger to the next; the
#             wait blocks the board for up to 2 timeouts (50 ms).
# raw (stuck-value detection): the ADC count or the echo width, which always jitter; never a
# BH1750's count (a dark night reads 0 for hours, steady light the same count for minutes).
import time

import asyncio
from micropython import const

_N = const(8)  # ADC counts per reading
_FULL = const(4095)
_LUX_MS = const(180)  # BH1750 H-resolution measurement time, max
_ECHO_US = const(25000)
_CYCLE_MS = const(60)


class Kit:
    raw = None
    err = None
    _on = False  # BH1750 powered on and measuring

    def __init__(self, kind, src, s):
        self.kind = kind
        self.src = src
        self.s = s
        self.addr = s.get("addr", s.get("pin", s.get("trig")))
        self.name = "adc%d" % s["pin"] if kind == "adc" else kind
        self._t = time.ticks_add(time.ticks_ms(), -_CYCLE_MS)  # HC-SR04: the last trigger

    async def read(self):
        k, f, s = self.kind, self.src, self.s
        if k == "bh1750":
            try:
                if not self._on:
                    f.writeto(self.addr, b"\x01")  # Power On
                    f.writeto(self.addr, b"\x10")  # Continuously H-Resolution Mode
                    self._on = True
                    await asyncio.sleep_ms(_LUX_MS)  # the first result
                d = f.readfrom(self.addr, 2)
            except OSError:
                self._on = False
                raise
            n = d[0] << 8 | d[1]
            if n == 0xFFFF:
                raise ValueError("range")
            return {"lux": round(n * 5 / 6, 1)}  # n / 1.2, without a float constant
        if k == "hcsr04":
            w = _CYCLE_MS - time.ticks_diff(time.ticks_ms(), self._t)
            if w > 0:
                await asyncio.sleep_ms(w)
            n = f(_ECHO_US)
            self._t = time.ticks_ms()
            if n == -2:
                raise OSError(19)
            if n < 0:
                raise ValueError("timeout")
            self.raw = n
            if not 116 <= n <= 23200:  # 2..400 cm
                raise ValueError("range")
            return {"distance_cm": round(n / 58, 1)}
        n = 0
        for _ in range(_N):
            n += f()
        n = self.raw = n // _N
        if n >= _FULL:
            raise ValueError("range")
        if k == "adc":
            a, b = s.get("scale"), s.get("offset")
            if a is not None or b is not None:
                n = round(n * (1 if a is None else a) + (b or 0), 4)
            return {s["metric"]: n}
        m = {"soil_raw": n}
        dry = s.get("dry")
        if dry is not None:
            p = (dry - n) * 100 / (dry - s["wet"])
            self.err = None
            if not 0 <= p <= 100:
                self.err = "clamped"
                p = 0 if p < 0 else 100
            m["moisture_pct"] = round(p, 1)
        return m
