# Sen firmware HAL for the unix port: a simulated board.
# Temperature and humidity follow a daily curve (host clock) plus small noise from a
# 16-bit xorshift seeded by config sim.seed, so a run is reproducible for a given seed.
# The clock is the host's Unix epoch (always "synced"); the network is always up.
import gc
import math
import time

from micropython import const

BOARD = "sim"
_DAY_S = const(86400)
_PEAK_S = const(54000)  # warmest at 15:00 UTC


class Hal:
    def __init__(self, cfg):
        self._dev = cfg["device_id"] or "sim-0000"
        seed = cfg["seed"]
        # xorshift16 state: any non-zero 16-bit value; small ints only, no heap use
        self._x = ((seed * 40503) ^ 0xACE1) & 0xFFFF or 0xACE1
        self._base = 21.0 + (seed % 7) * 0.5

    def device_id(self):
        return self._dev

    async def net_connect(self):
        return True

    def net_up(self):
        return True

    def ticks_ms(self):
        return time.ticks_ms()

    # Unix ms, or None while the clock is not synced (never, on the host)
    def epoch_ms(self):
        return time.time_ns() // 1000000

    def _rand(self):
        x = self._x
        x ^= (x << 7) & 0xFFFF
        x ^= x >> 9
        x ^= (x << 8) & 0xFFFF
        self._x = x
        return x / 65535.0 - 0.5  # -0.5..0.5

    def read_sensors(self):
        day = ((time.time_ns() // 1000000000) % _DAY_S - _PEAK_S) / _DAY_S
        c = math.cos(2.0 * math.pi * day)  # 1.0 at the warmest hour
        t = self._base + 4.0 * c + 0.2 * self._rand()
        rh = 55.0 - 12.0 * c + 1.0 * self._rand()
        return {"temp_c": round(t, 2), "rh_pct": round(rh, 1)}

    def diag(self):
        return {"heap_free": gc.mem_free(), "reset": "power"}
