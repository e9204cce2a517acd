# Sen simulated devices: Bosch BME280 at register level (chip id 0xD0 = 0x60, reset 0xE0,
# ctrl_hum 0xF2, status 0xF3, ctrl_meas 0xF4, config 0xF5, data 0xF7..0xFE, calibration
# 0x88..0xA1 and 0xE1..0xE7). A forced measurement turns the room's physics into raw ADC
# counts by inverting the datasheet's integer compensation (a bisection: it is monotonic).
import struct

# Calibration: T and P from the BMP280/BME280 datasheet's worked example; H typical values.
DATASHEET_TP = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
TYPICAL_H = (75, 362, 0, 313, 50, 30)


def comp_t(adc_t, c):
    t1, t2, t3 = c[0], c[1], c[2]
    v1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    v2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    return v1 + v2  # t_fine; temperature in 0.01 degC = (t_fine * 5 + 128) >> 8


def comp_p(adc_p, t_fine, c):
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = c[3:12]
    v1 = t_fine - 128000
    v2 = v1 * v1 * p6 + ((v1 * p5) << 17) + (p4 << 35)
    v1 = ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)
    v1 = (((1 << 47) + v1) * p1) >> 33
    if v1 == 0:
        return 0
    p = 1048576 - adc_p
    n = ((p << 31) - v2) * 3125
    p = n // v1 if n >= 0 else -((-n) // v1)  # C division truncates toward zero
    v1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    v2 = (p8 * p) >> 19
    return ((p + v1 + v2) >> 8) + (p7 << 4)  # Pa in Q24.8


def comp_h(adc_h, t_fine, h):
    h1, h2, h3, h4, h5, h6 = h
    v = t_fine - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * \
        (((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    v = 0 if v < 0 else v
    v = 419430400 if v > 419430400 else v
    return v >> 12  # %RH in Q22.10


def _bisect(f, target, lo, hi, rising):
    while lo < hi:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid + 1
        else:
            hi = mid
    return lo


class BME280:
    name = "bme280"

    def __init__(self, bus, phys, addr=0x76, tp=DATASHEET_TP, hh=TYPICAL_H):
        self.bus = bus
        self.phys = phys
        self.addr = addr
        self.tp = tp
        self.hh = hh
        self.regs = bytearray(256)
        self.regs[0xD0] = 0x60
        struct.pack_into("<HhhHhhhhhhhh", self.regs, 0x88, *tp)
        self.regs[0xA1] = hh[0]
        h4, h5 = hh[3] & 0xFFF, hh[4] & 0xFFF
        struct.pack_into("<hBBBBb", self.regs, 0xE1, hh[1], hh[2], h4 >> 4,
                         (h4 & 0x0F) | (h5 & 0x0F) << 4, h5 >> 4, hh[5])
        self.forced = None  # (adc_t, adc_p, adc_h) to report instead of the physics
        self.measured = 0
        self._ptr = 0
        self._set_raw(0x80000, 0x80000, 0x8000)  # the power-on data values

    def force_raw(self, adc_t, adc_p, adc_h):
        self.forced = (adc_t, adc_p, adc_h)

    def _set_raw(self, t, p, h):
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = p >> 12, (p >> 4) & 255, (p & 15) << 4
        r[0xFA], r[0xFB], r[0xFC] = t >> 12, (t >> 4) & 255, (t & 15) << 4
        r[0xFD], r[0xFE] = h >> 8, h & 255

    def _measure(self):
        self.measured += 1
        f = self.bus.fault(self.name)
        if f == "stuck" and self.measured > 1:
            return
        if f == "range":
            self._set_raw(0xFFFFF, 0, 0xFFFF)
            return
        if self.forced is not None:
            self._set_raw(*self.forced)
            return
        c = self.tp
        t = int(self.phys.temp_c() * 100)
        at = _bisect(lambda a: (comp_t(a, c) * 5 + 128) >> 8, t, 0, 0xFFFFF, True)
        tf = comp_t(at, c)
        ap = _bisect(lambda a: comp_p(a, tf, c), int(self.phys.p_hpa() * 25600), 0, 0xFFFFF, False)
        ah = _bisect(lambda a: comp_h(a, tf, self.hh), int(self.phys.rh_pct() * 1024), 0, 0xFFFF, True)
        self._set_raw(at, ap, ah)

    # I2C writes: one byte sets the register pointer; more are (register, value) pairs.
    def write(self, data):
        if len(data) == 1:
            self._ptr = data[0]
            return
        for i in range(0, len(data) - 1, 2):
            self._set(data[i], data[i + 1])

    def _set(self, reg, val):
        if reg == 0xE0 and val == 0xB6:
            self.regs[0xF4] = 0
        elif reg == 0xF4:
            self.regs[0xF4] = val
            if val & 3:  # forced (01/10) or normal (11): measure now
                self._measure()
                if val & 3 != 3:
                    self.regs[0xF4] = val & 0xFC  # forced: back to sleep when done
        elif reg in (0xF2, 0xF5):
            self.regs[reg] = val

    def read_reg(self, reg, n):
        return bytes(self.regs[reg:reg + n])

    def read(self, n):
        return self.read_reg(self._ptr, n)
