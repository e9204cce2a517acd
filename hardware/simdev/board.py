# Sen simulated devices: a board's default bus (BME280 0x76, SHT31 0x44, DHT20 0x38) and
# the fault file. The unix-port HAL imports this when hardware/simdev is on sys.path.
import json
import os

from bus import SimBus
from physics import Physics

FAULTS = "faults.json"
_KINDS = ("bme280", "sht31", "dht20")  # module name = type; class name = its upper case


# sensors: the config's sensor list ({"type", "addr"}); I2C ones get a simulated device.
# Only the simulated devices the board has are imported (each costs RAM for its code).
def make_bus(seed, sensors):
    phys = Physics(seed)
    bus = SimBus()
    for s in sensors:
        t = s["type"]
        if t in _KINDS:
            bus.add(getattr(__import__(t), t.upper())(bus, phys, s["addr"]))
    return bus, phys


class FaultFile:
    # Polls FAULTS in the flash dir: {"sht31": "nack", "wifi": "down", ...}; a missing or
    # unreadable file means no faults. Re-read only when its size or mtime changes.
    def __init__(self, path=FAULTS):
        self.path = path
        self._sig = None
        self.faults = {}

    def poll(self):
        try:
            st = os.stat(self.path)
            sig = (st[6], st[8])
        except OSError:
            sig = None
        if sig == self._sig:
            return False
        self._sig = sig
        f = {}
        if sig is not None:
            try:
                with open(self.path) as fh:
                    f = json.load(fh)
            except (OSError, ValueError):
                f = {}
            if not isinstance(f, dict):
                f = {}
        self.faults = f
        return True
