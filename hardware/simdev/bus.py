# Sen simulated devices: an I2C bus that dispatches to register-level devices, with fault
# injection. The unix-port HAL hands this bus to the real drivers in place of machine.I2C.
# Faults per device name ("bme280", "sht31", "dht20"): "nack" (OSError ENODEV, as a
# missing or hung device on the ESP32 port), "stuck" (the device repeats its last
# measurement), "range" (raw values at full scale: out of the physical range), "crc"
# (a corrupt CRC byte; devices without CRC ignore it). "" or absent = healthy.
# set_faults() takes a dict; the HAL feeds it from faults.json in the flash dir.
_ENODEV = 19


class SimBus:
    def __init__(self):
        self.devs = {}
        self.faults = {}
        self.ops = 0

    def add(self, dev):
        self.devs[dev.addr] = dev

    def set_faults(self, faults):
        self.faults = faults

    def fault(self, name):
        return self.faults.get(name, "")

    def _dev(self, addr):
        d = self.devs.get(addr)
        if d is None or self.faults.get(d.name) == "nack":
            raise OSError(_ENODEV)
        self.ops += 1
        return d

    def scan(self):
        return [a for a in sorted(self.devs) if self.faults.get(self.devs[a].name) != "nack"]

    def readfrom_mem(self, addr, reg, n):
        return self._dev(addr).read_reg(reg, n)

    def readfrom_mem_into(self, addr, reg, buf):
        buf[:] = self._dev(addr).read_reg(reg, len(buf))

    def writeto_mem(self, addr, reg, data):
        self._dev(addr).write(bytes((reg,)) + bytes(data))

    def writeto(self, addr, data, stop=True):
        self._dev(addr).write(bytes(data))
        return len(data)

    def readfrom(self, addr, n, stop=True):
        return self._dev(addr).read(n)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self._dev(addr).read(len(buf))


def crc8(data, init=0xFF):
    # CRC-8, polynomial 0x31, as Sensirion and Aosong sensors use (0xBEEF -> 0x92)
    c = init
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c << 1) ^ 0x31 if c & 0x80 else c << 1
            c &= 0xFF
    return c
