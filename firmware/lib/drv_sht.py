# Sen firmware: Sensirion SHT31 (0x44/0x45) and Aosong DHT20/AHT20 (0x38) drivers, I2C, in
# one class: the kind follows the address (0x38 is the DHT20's only one) unless given.
# Both answer with CRC-8 checked words (polynomial 0x31, init 0xFF; 0xBEEF -> 0x92).
# A bus error raises OSError, a bad CRC or a busy/uncalibrated sensor ValueError.
import asyncio

from micropython import const

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
    raw = None  # last raw (RH, T), for stuck-value detection
    _ready = False  # DHT20: calibration checked

    def __init__(self, i2c, addr=0x44, kind=None):
        self.i2c = i2c
        self.addr = addr
        self.name = kind or ("dht20" if addr == 0x38 else "sht31")
        self._dht = self.name == "dht20"

    async def read(self):
        i2c, a = self.i2c, self.addr
        if self._dht:
            if not self._ready:
                if not i2c.readfrom(a, 1)[0] & _AHT_CAL:
                    i2c.writeto(a, b"\xbe\x08\x00")  # init
                    await asyncio.sleep_ms(10)
                self._ready = True
            i2c.writeto(a, b"\xac\x33\x00")  # trigger
            await asyncio.sleep_ms(80)  # measurement takes 80 ms
            for _ in range(5):
                d = i2c.readfrom(a, 7)
                if not d[0] & _AHT_BUSY:
                    break
                await asyncio.sleep_ms(10)
            else:
                raise ValueError("dht20 busy")
            if crc8(d, 6) != d[6]:
                raise ValueError("dht20 crc")
            if not d[0] & _AHT_CAL:
                self._ready = False
                raise ValueError("dht20 not calibrated")
            h = d[1] << 12 | d[2] << 4 | d[3] >> 4
            t = (d[3] & 0x0F) << 16 | d[4] << 8 | d[5]
            full, s, k = 0xFFFFF, 1048576, 200  # T = k * t / s - 50, RH = 100 * h / s
        else:
            i2c.writeto(a, b"\x24\x00")  # single shot, high repeatability, no clock stretching
            await asyncio.sleep_ms(16)  # 15.5 ms max at high repeatability
            d = i2c.readfrom(a, 6)
            if crc8(d, 2) != d[2] or crc8(d[3:], 2) != d[5]:
                raise ValueError("sht31 crc")
            t = d[0] << 8 | d[1]
            h = d[3] << 8 | d[4]
            full, s, k = 0xFFFF, 65535, 175  # T = k * t / s - 45
        self.raw = (h, t)
        if t >= full or h >= full:
            raise ValueError("range")
        return {"temp_c": round(k * t / s - (50 if self._dht else 45), 2),
                "rh_pct": round(100 * h / s, 1)}


DHT20 = SHT31
