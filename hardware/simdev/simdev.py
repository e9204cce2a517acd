# Sen simulated devices, lean (written for a 64 KiB heap: module-level state, no class, one
# function for the whole bus, no const(): every module-level name costs RAM). The unix-port
# HAL imports this when hardware/simdev is on sys.path and hands the module (setup() returns
# it) to the real drivers in place of machine.I2C and machine.ADC.
#   physics  a room with a daily temperature cycle, humidity, pressure and a battery, from a
#            seed and the host clock (plus the clock offset of a clock-jump fault): phys()
#   faults   F, which the HAL fills from faults.json in the flash dir: per device kind "nack"
#            (OSError 19 ENODEV, as a missing or hung device), "stuck" (repeats its last
#            measurement), "range" (raw values at full scale), "crc" (a corrupt CRC byte; the
#            BME280 has none); "" or absent = healthy; "wifi": "down"; "clock_offset_ms": N
#   BME280   0x76/0x77: registers 0x88..0xFE (_REGS: chip id 0xD0 = 0x60, calibration CAL,
#            status 0xF3 never busy, data 0xF7..0xFE); writing ctrl_meas 0xF4 with a mode
#            measures: the physics turned into raw ADC counts by inverting the driver's
#            integer compensation (drv_bme280.comp; bisection: it is monotonic)
#   SHT31    0x44/0x45: a single shot command (0x24xx, 0x2Cxx), then a read of T msb, lsb,
#            CRC, RH msb, lsb, CRC; a read with nothing measured NACKs
#   DHT20    0x38: status bit 3 calibrated after init 0xBE 0x08 0x00; trigger 0xAC 0x33 0x00;
#            a read gives status, 20-bit RH, 20-bit T and a CRC-8 over the first six bytes
# The CRC-8 is drv_sht.crc8 (checked against the datasheet's example by the driver tests).
# Device state: D[addr] = [kind, out bytes, last raw, forced raw, DHT20 status (0x10 powered,
# 0x18 calibrated)]; a test sets forced raw values with force(addr, a, b[, c]) (in the order
# of the wire: BME280 T, P, H; SHT31 T, RH; DHT20 RH, T; none: back to the physics).
import struct

# BME280 calibration: T1..T3, P1..P9 (the datasheet's worked example), H1..H6
CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
       75, 362, 0, 313, 50, 30)
# BME280 registers 0x88..0xFE: CAL (T1..P9 at 0x88, H1 at 0xA1, H2..H6 at 0xE1..0xE7 with H4
# and H5 12-bit, nibble-packed), chip id 0xD0, status 0xF3, the power-on data 0xF7..0xFE
_REGS = bytearray(0x77)
_REGS[:24] = struct.pack("<HhhHhhhhhhhh", *CAL[:12])
_REGS[0x19] = CAL[12]
_REGS[0x48] = 0x60
_REGS[0x59:0x60] = struct.pack("<hBBBBb", CAL[13], CAL[14], CAL[15] >> 4,
                               (CAL[15] & 15) | (CAL[16] & 15) << 4, CAL[16] >> 4, CAL[17])
_REGS[0x6F:] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
del struct

F = {}  # current faults
D = {}  # addr -> [kind, out, last, forced, DHT20 status]
div = 2  # the battery's divider, as the ADC pin sees it (the HAL sets it)
_st = [0xACE1, 21, 1008, 4150000]  # rng, base degC, p0 hPa, vbat uV


def setup(seed, sensors):
    import sys
    _st[0] = ((seed * 40503) ^ 0xACE1) & 0xFFFF or 0xACE1
    _st[1] = 21 + (seed % 7) / 2
    _st[2] = 1008 + seed % 11
    for s in sensors:
        if s["type"] in ("bme280", "sht31", "dht20"):
            D[s["addr"]] = [s["type"], b"", None, None, 0x10]
    return sys.modules[__name__]


def force(addr, *raw):
    D[addr][3] = raw or None


# -> (degC, %RH, hPa, V) now, each with a little noise (xorshift16 from the seed)
def phys():
    import math
    import time
    o = F.get("clock_offset_ms", 0)
    s = time.time() + (o / 1000 if isinstance(o, int) else 0)
    x = _st[0]
    r = []
    for _ in range(4):
        x ^= (x << 7) & 0xFFFF
        x ^= x >> 9
        x ^= (x << 8) & 0xFFFF
        r.append((x - 32768) / 65535)  # -0.5..0.5
    _st[0] = x
    s %= 86400
    c = math.cos(2 * math.pi * (s - 54000) / 86400)  # warmest at 15:00 UTC
    return (_st[1] + 4 * c + r[0] / 5, min(100, max(0, 55 - 12 * c + r[1])),
            _st[2] + 3 * math.sin(2 * math.pi * s / 108000) + r[2] / 20,
            (_st[3] + 5000 * r[3]) / 1000000)


# The bus: what the drivers call of machine.I2C and machine.ADC, all one function
#   readfrom_mem(addr, reg, n)  BME280 registers
#   writeto(addr, data)         a command; a measurement fills the device's output
#   readfrom(addr, n)           SHT31 and DHT20 output
#   read_uv()                   the battery behind the divider, in uV at the ADC pin
def readfrom_mem(addr=None, x=None, n=0):
    if addr is None:
        _st[3] = max(3300000, _st[3] - 10)
        return int(phys()[3] * 1000000 / div)
    d = D.get(addr)
    f = F.get(d[0]) if d else "nack"
    if f == "nack":
        raise OSError(19)
    k = d[0]
    if n:  # readfrom_mem
        if k != "bme280":
            raise OSError(19)
        return bytes((d[1] if x == 0xF7 and d[1] else _REGS[x - 0x88:])[:n])
    if isinstance(x, int):  # readfrom
        o = d[1]
        if k == "dht20":
            return bytes((d[4],)) + bytes(x - 1) if x == 1 or not o else bytes(o[:x])
        if not o:
            raise OSError(19)  # SHT31: nothing measured, the read header is NACKed
        d[1] = b""
        return bytes(o[:x])
    b = bytes(x)  # writeto
    m = False
    if k == "bme280":
        for i in range(0, len(b) - 1, 2):  # (register, value) pairs
            if b[i] == 0xF4 and b[i + 1] & 3:  # ctrl_meas, forced or normal: measure
                m = True
    elif k == "sht31":  # single shot (0x24xx, 0x2Cxx): measure; anything else: nothing to read
        m = len(b) > 1 and b[0] in (0x24, 0x2C)
        d[1] = b""
    elif b == b"\xbe\x08\x00":  # dht20 init: calibrated from now on
        d[4] = 0x18
    else:
        m = b == b"\xac\x33\x00"
    if not m:
        return len(b)
    # raw values: the last ones (stuck), full scale (range), forced, or from the physics
    r = d[2] if f == "stuck" and d[2] else (None if f == "range" else d[3])
    if r is None:
        t, h, p, _ = phys()
        if k == "bme280":
            r = [0xFFFFF, 0, 0xFFFF]
            if f != "range":  # the driver's compensation, inverted by bisection (monotonic)
                import drv_bme280
                w = (int(t * 100), -int(p * 25600), int(h * 1024))
                for i in range(3):
                    lo, hi = 0, 0xFFFF if i == 2 else 0xFFFFF
                    while lo < hi:
                        r[i] = (lo + hi) // 2
                        v = drv_bme280.comp(r[0], r[1], r[2], CAL)[i]
                        if (-v if i == 1 else v) < w[i]:
                            lo = r[i] + 1
                        else:
                            hi = r[i]
                    r[i] = lo
        else:  # SHT31: T = 175 * t / s - 45, RH = 100 * h / s; DHT20: T = 200 * t / s - 50
            s, o, w = (0xFFFF, 45, 175) if k == "sht31" else (0xFFFFF, 50, 200)
            r = [s, s]
            if f != "range":
                r = [max(0, min(s, round((t + o) * s / w))), max(0, min(s, round(h * s / 100)))]
            if k == "dht20":
                r.reverse()  # RH first
    d[2] = r = tuple(r)  # in the order of the wire: BME280 T, P, H; SHT31 T, RH; DHT20 RH, T
    if k == "bme280":  # press, temp: 20 bits, left-aligned in 3 bytes; hum: 16 bits
        d[1] = (r[1] << 44 | r[0] << 20 | r[2]).to_bytes(8, "big")
        return len(b)
    import drv_sht
    # SHT31: T, RH, 16 bits each, each with a CRC-8; DHT20: status, RH and T (20 bits each),
    # one CRC-8 (crc fault: the first CRC is corrupt)
    o = d[1] = bytearray()
    for w in ((r[0].to_bytes(2, "big"), r[1].to_bytes(2, "big")) if k == "sht31" else
              ((d[4] << 40 | r[0] << 20 | r[1]).to_bytes(6, "big"),)):
        o += w
        o.append(drv_sht.crc8(w, len(w)) ^ (0x5A if f == "crc" and len(o) == len(w) else 0))
    return len(b)


writeto = readfrom = read_uv = readfrom_mem
