# Sen firmware: Bosch BME280 driver (I2C, 0x76/0x77). Forced mode, x1 oversampling, the
# datasheet's integer compensation (32-bit T, 64-bit P, 32-bit H formulas; MicroPython's
# long ints carry the 64-bit ones). Raises OSError on a bus error, ValueError on nonsense.
import asyncio
import struct

from micropython import const

_ID = const(0xD0)
_CTRL_HUM = const(0xF2)
_STATUS = const(0xF3)
_CTRL_MEAS = const(0xF4)
_DATA = const(0xF7)
_CHIP_ID = const(0x60)


class BME280:
    name = "bme280"

    def __init__(self, i2c, addr=0x76):
        self.i2c = i2c
        self.addr = addr
        self.cal = None
        self.hum = None
        self.raw = None  # last (adc_t, adc_p, adc_h), for stuck-value detection

    def _init(self):
        i2c, a = self.i2c, self.addr
        if i2c.readfrom_mem(a, _ID, 1)[0] != _CHIP_ID:
            raise ValueError("not a BME280")
        self.cal = struct.unpack("<HhhHhhhhhhhh", i2c.readfrom_mem(a, 0x88, 24))
        h1 = i2c.readfrom_mem(a, 0xA1, 1)[0]
        e = i2c.readfrom_mem(a, 0xE1, 7)
        h2 = struct.unpack_from("<h", e, 0)[0]
        h4 = e[3] << 4 | (e[4] & 0x0F)
        h5 = e[5] << 4 | e[4] >> 4
        h4 = h4 - 4096 if h4 & 0x800 else h4  # both are signed 12-bit
        h5 = h5 - 4096 if h5 & 0x800 else h5
        h6 = e[6] - 256 if e[6] & 0x80 else e[6]
        self.hum = (h1, h2, e[2], h4, h5, h6)

    async def read(self):
        i2c, a = self.i2c, self.addr
        if self.cal is None:
            self._init()
        i2c.writeto(a, bytes((_CTRL_HUM, 0x01, _CTRL_MEAS, 0x25)))  # x1, x1, x1, forced
        await asyncio.sleep_ms(10)  # 8 ms max at x1 oversampling
        for _ in range(10):
            if not i2c.readfrom_mem(a, _STATUS, 1)[0] & 0x08:
                break
            await asyncio.sleep_ms(2)
        d = i2c.readfrom_mem(a, _DATA, 8)
        ap = d[0] << 12 | d[1] << 4 | d[2] >> 4
        at = d[3] << 12 | d[4] << 4 | d[5] >> 4
        ah = d[6] << 8 | d[7]
        self.raw = (at, ap, ah)
        return self.compensate(at, ap, ah)

    # -> {"temp_c", "p_hpa", "rh_pct"}; ValueError when out of the sensor's range
    def compensate(self, at, ap, ah):
        c = self.cal
        t_fine = self._t_fine(at, c)
        t = (t_fine * 5 + 128) >> 8
        p = self._p(ap, t_fine, c)
        h = self._h(ah, t_fine, self.hum)
        if at == 0x80000 or not -4000 <= t <= 8500 or not 30000 * 256 <= p <= 110000 * 256:
            raise ValueError("bme280 out of range")
        return {"temp_c": t / 100, "p_hpa": round(p / 25600, 2), "rh_pct": round(h / 1024, 1)}

    @staticmethod
    def _t_fine(at, c):
        v1 = (((at >> 3) - (c[0] << 1)) * c[1]) >> 11
        v2 = (((((at >> 4) - c[0]) * ((at >> 4) - c[0])) >> 12) * c[2]) >> 14
        return v1 + v2

    @staticmethod
    def _p(ap, t_fine, c):
        v1 = t_fine - 128000
        v2 = v1 * v1 * c[8] + ((v1 * c[7]) << 17) + (c[6] << 35)
        v1 = ((v1 * v1 * c[5]) >> 8) + ((v1 * c[4]) << 12)
        v1 = (((1 << 47) + v1) * c[3]) >> 33
        if v1 == 0:
            return 0  # avoid a division by zero
        p = 1048576 - ap
        n = ((p << 31) - v2) * 3125
        p = n // v1 if n >= 0 else -((-n) // v1)  # C division truncates toward zero
        v1 = (c[11] * (p >> 13) * (p >> 13)) >> 25
        v2 = (c[10] * p) >> 19
        return ((p + v1 + v2) >> 8) + (c[9] << 4)  # Pa, Q24.8

    @staticmethod
    def _h(ah, t_fine, h):
        v = t_fine - 76800
        v = ((((ah << 14) - (h[3] << 20) - (h[4] * v)) + 16384) >> 15) * \
            (((((((v * h[5]) >> 10) * (((v * h[2]) >> 11) + 32768)) >> 10) + 2097152) * h[1] + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * h[0]) >> 4)
        v = 0 if v < 0 else (419430400 if v > 419430400 else v)
        return v >> 12  # %RH, Q22.10
