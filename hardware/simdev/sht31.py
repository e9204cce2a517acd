# Sen simulated devices: Sensirion SHT31 at command level (address 0x44/0x45). Single shot
# 0x2400/0x240B/0x2416 (and the clock-stretching 0x2C06/0x2C0D/0x2C10) measure; a read
# returns T msb, lsb, CRC, RH msb, lsb, CRC (CRC-8 0x31, init 0xFF). Soft reset 0x30A2,
# status 0xF32D (two bytes and a CRC), heater 0x306D/0x3066.
from bus import crc8

_MEASURE = (0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10)


class SHT31:
    name = "sht31"

    def __init__(self, bus, phys, addr=0x44):
        self.bus = bus
        self.phys = phys
        self.addr = addr
        self.out = b""
        self.last = None
        self.forced = None  # (raw_t, raw_rh)

    def force_raw(self, raw_t, raw_rh):
        self.forced = (raw_t, raw_rh)

    def _word(self, w, bad):
        b = bytes((w >> 8, w & 255))
        c = crc8(b)
        return b + bytes((c ^ 0x5A if bad else c,))

    def write(self, data):
        if len(data) < 2:
            return
        cmd = data[0] << 8 | data[1]
        f = self.bus.fault(self.name)
        if cmd in _MEASURE:
            if f == "stuck" and self.last is not None:
                rt, rh = self.last
            elif f == "range":
                rt, rh = 0xFFFF, 0xFFFF
            elif self.forced is not None:
                rt, rh = self.forced
            else:
                t = self.phys.temp_c()
                h = self.phys.rh_pct()
                rt = max(0, min(0xFFFF, int((t + 45.0) * 65535.0 / 175.0 + 0.5)))
                rh = max(0, min(0xFFFF, int(h * 65535.0 / 100.0 + 0.5)))
            self.last = (rt, rh)
            self.out = self._word(rt, f == "crc") + self._word(rh, False)
        elif cmd == 0xF32D:
            self.out = self._word(0x8010, False)
        else:
            self.out = b""

    def read(self, n):
        if not self.out:
            raise OSError(19)  # no measurement ready: the SHT31 NACKs the read header
        o = self.out[:n]
        self.out = b""
        return o

    def read_reg(self, reg, n):
        raise OSError(19)
