# Sen simulated devices: Aosong DHT20 / AHT20 at command level (address 0x38). Status
# byte: bit 7 busy, bit 3 calibrated (0x18 once initialised). Init 0xBE 0x08 0x00;
# trigger 0xAC 0x33 0x00; a read gives status, 20-bit humidity, 20-bit temperature and
# a CRC-8 (0x31, init 0xFF) over the first six bytes. RH = S/2^20*100, T = S/2^20*200-50.
from bus import crc8


class DHT20:
    name = "dht20"

    def __init__(self, bus, phys, addr=0x38):
        self.bus = bus
        self.phys = phys
        self.addr = addr
        self.status = 0x10  # powered, not yet calibrated
        self.out = None
        self.last = None
        self.forced = None  # (raw_rh, raw_t), 20 bits each

    def force_raw(self, raw_rh, raw_t):
        self.forced = (raw_rh, raw_t)

    def write(self, data):
        d = bytes(data)
        if d == b"\xbe\x08\x00" or d[:1] in (b"\x1b", b"\x1c", b"\x1e"):
            self.status = 0x18
        elif d == b"\xac\x33\x00":
            f = self.bus.fault(self.name)
            if f == "stuck" and self.last is not None:
                h, t = self.last
            elif f == "range":
                h, t = 0xFFFFF, 0xFFFFF
            elif self.forced is not None:
                h, t = self.forced
            else:
                h = int(self.phys.rh_pct() / 100.0 * 1048576.0 + 0.5)
                t = int((self.phys.temp_c() + 50.0) / 200.0 * 1048576.0 + 0.5)
                h, t = min(h, 0xFFFFF), max(0, min(t, 0xFFFFF))
            self.last = (h, t)
            b = bytes((self.status, h >> 12, (h >> 4) & 255, (h & 15) << 4 | t >> 16,
                       (t >> 8) & 255, t & 255))
            c = crc8(b)
            self.out = b + bytes((c ^ 0x5A if f == "crc" else c,))

    def read(self, n):
        if n == 1 or self.out is None:
            return bytes((self.status,)) + bytes(n - 1)
        o = self.out[:n]
        return o

    def read_reg(self, reg, n):
        return bytes((self.status,)) + bytes(n - 1)
