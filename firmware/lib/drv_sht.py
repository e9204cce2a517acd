# Sen firmware: Sensirion SHT31 (0x44/0x45) and Aosong DHT20/AHT20 (0x38) drivers, I2C.
# Both answer with CRC-8 checked words (polynomial 0x31, init 0xFF; 0xBEEF -> 0x92).
# A bus error raises OSError, a bad CRC or a busy/uncalibrated sensor ValueError.
import asyncio

from micropython import const

_SHT_SINGLE_HIGH = b"\x24\x00"  # single shot, high repeatability, no clock stretching
_AHT_TRIGGER = b"\xac\x33\x00"
_AHT_INIT = b"\xbe\x08\x00"
_AHT_BUSY = const(0x80)
_AHT_CAL = const(0x08)


def crc8(data, n):
    c = 0xFF
    for i in range(n):
        c ^= data[i]
        for _ in range(8):
            c = ((c << 1) ^ 0x31) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


class SHT31:
    name = "sht31"

    def __init__(self, i2c, addr=0x44):
        self.i2c = i2c
        self.addr = addr
        self.raw = None

    async def read(self):
        self.i2c.writeto(self.addr, _SHT_SINGLE_HIGH)
        await asyncio.sleep_ms(16)  # 15.5 ms max at high repeatability
        d = self.i2c.readfrom(self.addr, 6)
        return self.convert(d)

    def convert(self, d):
        if crc8(d, 2) != d[2] or crc8(memoryview(d)[3:], 2) != d[5]:
            raise ValueError("sht31 crc")
        rt = d[0] << 8 | d[1]
        rh = d[3] << 8 | d[4]
        self.raw = (rt, rh)
        if rt == 0xFFFF or rh == 0xFFFF:
            raise ValueError("sht31 out of range")
        return {"temp_c": round(-45 + 175 * rt / 65535, 2), "rh_pct": round(100 * rh / 65535, 1)}


class DHT20:
    name = "dht20"

    def __init__(self, i2c, addr=0x38):
        self.i2c = i2c
        self.addr = addr
        self.raw = None
        self._ready = False

    async def read(self):
        i2c, a = self.i2c, self.addr
        if not self._ready:
            if not i2c.readfrom(a, 1)[0] & _AHT_CAL:
                i2c.writeto(a, _AHT_INIT)
                await asyncio.sleep_ms(10)
            self._ready = True
        i2c.writeto(a, _AHT_TRIGGER)
        await asyncio.sleep_ms(80)  # measurement takes 80 ms
        for _ in range(5):
            d = i2c.readfrom(a, 7)
            if not d[0] & _AHT_BUSY:
                return self.convert(d)
            await asyncio.sleep_ms(10)
        raise ValueError("dht20 busy")

    def convert(self, d):
        if crc8(d, 6) != d[6]:
            raise ValueError("dht20 crc")
        if not d[0] & _AHT_CAL:
            self._ready = False
            raise ValueError("dht20 not calibrated")
        h = d[1] << 12 | d[2] << 4 | d[3] >> 4
        t = (d[3] & 0x0F) << 16 | d[4] << 8 | d[5]
        self.raw = (h, t)
        if h >= 0xFFFFF or t >= 0xFFFFF:
            raise ValueError("dht20 out of range")
        return {"temp_c": round(t * 200 / 1048576 - 50, 2), "rh_pct": round(h * 100 / 1048576, 1)}
