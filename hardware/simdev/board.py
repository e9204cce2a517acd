# Sen simulated devices: a board's default bus (BME280 0x76, SHT31 0x44, DHT20 0x38) and
# the fault file. The unix-port HAL imports this when hardware/simdev is on sys.path.
import json
import os

from bme280 import BME280
from bus import SimBus
from dht20 import DHT20
from physics import Physics
from sht31 import SHT31

FAULTS = "faults.json"
_KINDS = {"bme280": BME280, "sht31": SHT31, "dht20": DHT20}


# sensors: the config's sensor list ({"type", "addr"}); I2C ones get a simulated device
def make_bus(seed, sensors):
    phys = Physics(seed)
    bus = SimBus()
    for s in sensors:
        k = _KINDS.get(s["type"])
        if k is not None:
            bus.add(k(bus, phys, s["addr"]))
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
