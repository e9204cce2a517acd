# Sen firmware: the modem's wires on ESP32, the HAL part of the cellular transport (loaded
# only when it is configured): Wires -> readinto(buf) -> n or None (non-blocking),
# write(bytes), pulse(ms) (PWRKEY held active for ms); u is the machine.UART (the PPP path
# hands it to network.PPP: ppp.py, hal_esp32.ppp). From config.json's "cell": uart (UART id,
# default 1), tx, rx, baud (115200), pwrkey (GPIO), pwrkey_active (1: the pin drives a
# transistor that pulls PWRKEY low, as on LilyGO's T-SIM7080G; 0: the pin is wired to PWRKEY
# itself); pmu: {"chip", "sda", "scl"} when the modem's supply is a power manager's rail,
# switched on (pmu_<chip>.py) before the first PWRKEY and again until that worked (LilyGO's
# T-SIM7080G-S3: an AXP2101). The unix port's wires are modem_tcp.py (a socket to the
# simulated modem).
import sys
import time

from log import log

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass


# Built by cellcfg.py, which sets u (the UART), _a (pwrkey_active), p (the PWRKEY Pin, or
# None) and pmu (cell.pmu, or None): no constructor stays in the heap
class Wires:
    u: Any
    _a: int
    p: Any
    pmu: Any

    def readinto(self, b):
        return self.u.readinto(b)

    def write(self, b):
        self.u.write(b)

    def pulse(self, ms):
        if self.pmu:
            self.pmu = _supply(self.pmu)
        if self.p is not None:
            self.p.value(self._a)
            time.sleep_ms(ms)
            self.p.value(1 - self._a)


# The modem's supply rails on through cell.pmu's chip (its module loaded for it and dropped)
# -> None once on, else pmu (tried again at the next power-on; the climb says it got no answer)
def _supply(pmu):
    from machine import Pin, SoftI2C
    n = "pmu_" + pmu["chip"]
    try:
        __import__(n).modem_on(SoftI2C(scl=Pin(pmu["scl"]), sda=Pin(pmu["sda"]), freq=100000))
        log("cell: modem supply on (%s)" % pmu["chip"])
        return None
    except (OSError, ValueError, ImportError) as e:
        log("cell: modem supply not switched on (%s, SDA %d, SCL %d): %r" % (pmu["chip"], pmu["sda"], pmu["scl"], e))
        return pmu
    finally:
        sys.modules.pop(n, None)
