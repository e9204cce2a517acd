# Sen firmware: Bosch BME280 driver (I2C, 0x76/0x77). Forced mode, x1 oversampling, the
# datasheet's integer compensation (32-bit T, 64-bit P, 32-bit H formulas; MicroPython's
# long ints carry the 64-bit ones). Raises OSError on a bus error, ValueError on nonsense.
import asyncio
import struct


# The datasheet's integer compensation: raw ADC counts and the calibration c (T1..T3,
# P1..P9, H1..H6) -> (degC * 100, Pa in Q24.8, %RH in Q22.10). hardware/simdev inverts it.
def comp(at, ap, ah, c):
    v1 = (((at >> 3) - (c[0] << 1)) * c[1]) >> 11
    v2 = (((((at >> 4) - c[0]) * ((at >> 4) - c[0])) >> 12) * c[2]) >> 14
    tf = v1 + v2  # t_fine
    v1 = tf - 128000
    v2 = v1 * v1 * c[8] + ((v1 * c[7]) << 17) + (c[6] << 35)
    v1 = ((v1 * v1 * c[5]) >> 8) + ((v1 * c[4]) << 12)
    v1 = (((1 << 47) + v1) * c[3]) >> 33
    p = 0  # v1 == 0: avoid a division by zero
    if v1:
        p = 1048576 - ap
        n = ((p << 31) - v2) * 3125
        p = n // v1 if n >= 0 else -((-n) // v1)  # C division truncates toward zero
        p = ((p + ((c[11] * (p >> 13) * (p >> 13)) >> 25) + ((c[10] * p) >> 19)) >> 8) + (c[9] << 4)
    v = tf - 76800
    v = ((((ah << 14) - (c[15] << 20) - (c[16] * v)) + 16384) >> 15) * \
        (((((((v * c[17]) >> 10) * (((v * c[14]) >> 11) + 32768)) >> 10) + 2097152) * c[13] + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c[12]) >> 4)
    return (tf * 5 + 128) >> 8, p, min(max(v, 0), 419430400) >> 12


class BME280:
    name = "bme280"
    cal = None  # T1..T3, P1..P9, H1..H6, read once
    raw = None  # last (adc_t, adc_p, adc_h), for stuck-value detection

    def __init__(self, i2c, addr=0x76):
        self.i2c = i2c
        self.addr = addr

    # -> {"temp_c", "p_hpa", "rh_pct"}; ValueError when out of the sensor's range
    async def read(self):
        i2c, a = self.i2c, self.addr
        if self.cal is None:
            if i2c.readfrom_mem(a, 0xD0, 1)[0] != 0x60:  # chip id
                raise ValueError("chip id")
            e = i2c.readfrom_mem(a, 0xE1, 7)
            h4 = e[3] << 4 | (e[4] & 0x0F)
            h5 = e[5] << 4 | e[4] >> 4
            # H4, H5 are signed 12-bit, H6 signed 8-bit
            self.cal = struct.unpack("<HhhHhhhhhhhh", i2c.readfrom_mem(a, 0x88, 24)) + (
                i2c.readfrom_mem(a, 0xA1, 1)[0], struct.unpack_from("<h", e)[0], e[2],
                h4 - (h4 & 0x800) * 2, h5 - (h5 & 0x800) * 2, e[6] - (e[6] & 0x80) * 2)
        i2c.writeto(a, b"\xf2\x01\xf4\x25")  # ctrl_hum x1, ctrl_meas x1, x1, forced
        await asyncio.sleep_ms(10)  # 8 ms max at x1 oversampling
        for _ in range(10):
            if not i2c.readfrom_mem(a, 0xF3, 1)[0] & 0x08:  # status: measuring
                break
            await asyncio.sleep_ms(2)
        d = i2c.readfrom_mem(a, 0xF7, 8)
        r = self.raw = (d[3] << 12 | d[4] << 4 | d[5] >> 4, d[0] << 12 | d[1] << 4 | d[2] >> 4,
                        d[6] << 8 | d[7])
        t, p, h = comp(r[0], r[1], r[2], self.cal)
        if r[0] == 0x80000 or not -4000 <= t <= 8500 or not 30000 * 256 <= p <= 110000 * 256:
            raise ValueError("range")
        return {"temp_c": t / 100, "p_hpa": round(p / 25600, 2), "rh_pct": round(h / 1024, 1)}
