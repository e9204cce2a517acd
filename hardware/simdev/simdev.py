# Sen simulated devices, lean (written for a 64 KiB heap: module-level state, no class per
# device, registers computed on read). The unix-port HAL imports this when hardware/simdev
# is on sys.path and hands Bus() to the real drivers in place of machine.I2C.
#   physics  a room with a daily temperature cycle, humidity, pressure and a battery, from a
#            seed and the host clock (plus the clock offset of a clock-jump fault)
#   faults   F, from faults.json in the flash dir (poll()): per device name "nack" (OSError
#            ENODEV, as a missing or hung device), "stuck" (repeats its last measurement),
#            "range" (raw values at full scale), "crc" (a corrupt CRC byte; the BME280 has
#            none); "" or absent = healthy; "wifi": "down"; "clock_offset_ms": N
#   BME280   0x76/0x77: chip id 0xD0 = 0x60, calibration 0x88..0xA1 and 0xE1..0xE7 (the
#            datasheet's worked example for T and P), status 0xF3, data 0xF7..0xFE; writing
#            ctrl_meas 0xF4 with a mode measures: the physics turned into raw ADC counts by
#            inverting the driver's integer compensation (bisection: it is monotonic)
#   SHT31    0x44/0x45: single shot 0x2400/0x240B/0x2416/0x2C06/0x2C0D/0x2C10, then a read of
#            T msb, lsb, CRC, RH msb, lsb, CRC; status 0xF32D; a read with nothing measured NACKs
#   DHT20    0x38: status bit 3 calibrated after init 0xBE 0x08 0x00; trigger 0xAC 0x33 0x00;
#            a read gives status, 20-bit RH, 20-bit T and a CRC-8 over the first six bytes
# Device state: D[addr] = [kind, out bytes, last raw, forced raw, DHT20 status (0x10 powered,
# 0x18 calibrated)]; a test sets forced raw
# values with force(addr, a, b[, c]) (None: back to the physics).
import json
import math
import os
import struct
import time

from micropython import const

_ENODEV = const(19)
_DAY_S = const(86400)
_PEAK_S = const(54000)
FAULTS = "faults.json"
TP = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
HH = (75, 362, 0, 313, 50, 30)
_SHT_MEASURE = (0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10)

F = {}  # current faults
D = {}  # addr -> [kind, out, last, forced]
_st = [0xACE1, 21.0, 1008.0, 4.15, None]  # rng, base degC, p0 hPa, vbat, faults.json stat


def setup(seed, sensors):
    _st[0] = ((seed * 40503) ^ 0xACE1) & 0xFFFF or 0xACE1
    _st[1] = 21.0 + (seed % 7) * 0.5
    _st[2] = 1008.0 + (seed % 11)
    for s in sensors:
        if s["type"] in ("bme280", "sht31", "dht20"):
            D[s["addr"]] = [s["type"], b"", None, None, 0x10]
    return Bus()


def force(addr, *raw):
    D[addr][3] = raw or None


# Re-reads FAULTS when its size or mtime changed; True when F changed.
def poll(path=FAULTS):
    try:
        st = os.stat(path)
        sig = (st[6], st[8])
    except OSError:
        sig = None
    if sig == _st[4]:
        return False
    _st[4] = sig
    f = {}
    if sig is not None:
        try:
            with open(path) as fh:
                f = json.load(fh)
        except (OSError, ValueError):
            pass
    F.clear()
    if isinstance(f, dict):
        F.update(f)
    return True


# ---- physics ----
def rnd():
    x = _st[0]
    x ^= (x << 7) & 0xFFFF
    x ^= x >> 9
    x ^= (x << 8) & 0xFFFF
    _st[0] = x
    return x / 65535.0 - 0.5


def _now_s():
    o = F.get("clock_offset_ms", 0)
    return time.time() + (o / 1000 if isinstance(o, int) else 0)


def _c():
    return math.cos(2.0 * math.pi * ((_now_s() % _DAY_S - _PEAK_S) / _DAY_S))


def temp_c():
    return _st[1] + 4.0 * _c() + 0.2 * rnd()


def rh_pct():
    return min(100.0, max(0.0, 55.0 - 12.0 * _c() + rnd()))


def p_hpa():
    h = _now_s() % _DAY_S / 3600.0
    return _st[2] + 3.0 * math.sin(2.0 * math.pi * h / 30.0) + 0.05 * rnd()


def vbat_v():
    _st[3] = max(3.3, _st[3] - 0.00001)
    return _st[3] + 0.005 * rnd()


def crc8(data, bad=False):
    c = 0xFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x31) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return bytes(data) + bytes((c ^ 0x5A if bad else c,))


def _bisect(f, target, hi, rising):
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid + 1
        else:
            hi = mid
    return lo


# -> (raw a, raw b[, raw c]) for the device's fault, forced values or the physics
def _raw(d, fn, full):
    f = F.get(d[0], "")
    if f == "stuck" and d[2] is not None:
        return d[2]
    r = full if f == "range" else (d[3] or fn())
    d[2] = r
    return r


def _bme_phys():
    import drv_bme280  # the driver's compensation, inverted
    k = drv_bme280.BME280
    t = int(temp_c() * 100)
    at = _bisect(lambda a: (k._t_fine(a, TP) * 5 + 128) >> 8, t, 0xFFFFF, True)
    tf = k._t_fine(at, TP)
    ap = _bisect(lambda a: k._p(a, tf, TP), int(p_hpa() * 25600), 0xFFFFF, False)
    ah = _bisect(lambda a: k._h(a, tf, HH), int(rh_pct() * 1024), 0xFFFF, True)
    return at, ap, ah


def _sht_phys():
    rt = int((temp_c() + 45.0) * 65535.0 / 175.0 + 0.5)
    rh = int(rh_pct() * 65535.0 / 100.0 + 0.5)
    return max(0, min(0xFFFF, rt)), max(0, min(0xFFFF, rh))


def _dht_phys():
    h = int(rh_pct() / 100.0 * 1048576.0 + 0.5)
    t = int((temp_c() + 50.0) / 200.0 * 1048576.0 + 0.5)
    return min(h, 0xFFFFF), max(0, min(t, 0xFFFFF))


def _write(d, b):
    k = d[0]
    if k == "bme280":
        for i in range(0, len(b) - 1, 2):  # (register, value) pairs
            if b[i] == 0xF4 and b[i + 1] & 3:  # ctrl_meas, forced or normal: measure
                t, p, h = _raw(d, _bme_phys, (0xFFFFF, 0, 0xFFFF))
                d[1] = bytes((p >> 12, (p >> 4) & 255, (p & 15) << 4, t >> 12, (t >> 4) & 255,
                              (t & 15) << 4, h >> 8, h & 255))
    elif k == "sht31":
        cmd = b[0] << 8 | b[1] if len(b) > 1 else 0
        if cmd in _SHT_MEASURE:
            t, h = _raw(d, _sht_phys, (0xFFFF, 0xFFFF))
            d[1] = crc8((t >> 8, t & 255), F.get(k) == "crc") + crc8((h >> 8, h & 255))
        else:
            d[1] = crc8((0x80, 0x10)) if cmd == 0xF32D else b""
    elif bytes(b) == b"\xbe\x08\x00":  # dht20 init: calibrated from now on
        d[4] = 0x18
    elif bytes(b) == b"\xac\x33\x00":
        h, t = _raw(d, _dht_phys, (0xFFFFF, 0xFFFFF))
        d[1] = crc8((d[4], h >> 12, (h >> 4) & 255, (h & 15) << 4 | t >> 16,
                     (t >> 8) & 255, t & 255), F.get(k) == "crc")


def _bme_reg(d, reg, n):
    if reg == 0xD0:
        return b"\x60"
    if reg == 0x88:
        return struct.pack("<HhhHhhhhhhhh", *TP)
    if reg == 0xA1:
        return bytes((HH[0],))
    if reg == 0xE1:
        h4, h5 = HH[3] & 0xFFF, HH[4] & 0xFFF
        return struct.pack("<hBBBBb", HH[1], HH[2], h4 >> 4, (h4 & 0x0F) | (h5 & 0x0F) << 4,
                           h5 >> 4, HH[5])
    if reg == 0xF7 and d[1]:
        return d[1]
    if reg == 0xF7:  # power-on data values
        return b"\x80\x00\x00\x80\x00\x00\x80\x00"
    return bytes(n)  # status 0xF3: not measuring


# The I2C bus the drivers get (the calls they use of machine.I2C); read_uv: the battery
# behind a divider (div), as an ADC pin sees it.
class Bus:
    div = 2.0

    def _d(self, addr):
        d = D.get(addr)
        if d is None or F.get(d[0]) == "nack":
            raise OSError(_ENODEV)
        return d

    def readfrom_mem(self, addr, reg, n):
        d = self._d(addr)
        if d[0] != "bme280":
            raise OSError(_ENODEV)
        return bytes(_bme_reg(d, reg, n)[:n])

    def writeto(self, addr, data, stop=True):
        _write(self._d(addr), data)
        return len(data)

    def readfrom(self, addr, n, stop=True):
        d = self._d(addr)
        if d[0] == "dht20":
            return bytes((d[4],)) + bytes(n - 1) if n == 1 or not d[1] else d[1][:n]
        if not d[1]:
            raise OSError(_ENODEV)  # SHT31: nothing measured, the read header is NACKed
        o = d[1][:n]
        d[1] = b""
        return o

    def read_uv(self):
        return int(vbat_v() / self.div * 1000000)
