# Sen simulated devices: seedable physics of one room, shared by every simulated sensor.
# Temperature follows a daily cosine (warmest 15:00 UTC), relative humidity moves against
# it, pressure drifts slowly; each reading adds small noise from a 16-bit xorshift seeded
# by the board's sim.seed, so a run is reproducible for a given seed and host clock.
import math
import time

from micropython import const

_DAY_S = const(86400)
_PEAK_S = const(54000)


class Physics:
    def __init__(self, seed=0):
        self._x = ((seed * 40503) ^ 0xACE1) & 0xFFFF or 0xACE1
        self.base_c = 21.0 + (seed % 7) * 0.5
        self.p0_hpa = 1008.0 + (seed % 11)
        self.vbat = 4.15

    def rand(self):
        x = self._x
        x ^= (x << 7) & 0xFFFF
        x ^= x >> 9
        x ^= (x << 8) & 0xFFFF
        self._x = x
        return x / 65535.0 - 0.5  # -0.5..0.5

    def _c(self):
        day = ((time.time_ns() // 1000000000) % _DAY_S - _PEAK_S) / _DAY_S
        return math.cos(2.0 * math.pi * day)  # 1.0 at the warmest hour

    def temp_c(self):
        return self.base_c + 4.0 * self._c() + 0.2 * self.rand()

    def rh_pct(self):
        return min(100.0, max(0.0, 55.0 - 12.0 * self._c() + 1.0 * self.rand()))

    def p_hpa(self):
        hours = (time.time_ns() // 1000000000) % _DAY_S / 3600.0
        return self.p0_hpa + 3.0 * math.sin(2.0 * math.pi * hours / 30.0) + 0.05 * self.rand()

    # battery: a slow discharge with noise, volts at the cell
    def vbat_v(self):
        self.vbat = max(3.3, self.vbat - 0.00001)
        return self.vbat + 0.005 * self.rand()
