# Sen firmware: the modem's wires on ESP32, the HAL part of the cellular transport (loaded
# only when it is configured): Wires -> readinto(buf) -> n or None (non-blocking),
# write(bytes), pulse(ms) (PWRKEY held active for ms); u is the machine.UART (the PPP path
# hands it to network.PPP: ppp.py, hal_esp32.ppp). From config.json's "cell": uart (UART id,
# default 1), tx, rx, baud (115200), pwrkey (GPIO), pwrkey_active (1: the pin drives a
# transistor that pulls PWRKEY low, as on LilyGO's T-SIM7080G; 0: the pin is wired to PWRKEY
# itself). The unix port's wires are modem_tcp.py (a socket to the simulated modem).
import time

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass


# Built by cellcfg.py, which sets u (the UART), _a (pwrkey_active) and p (the PWRKEY Pin, or
# None): no constructor stays in the heap
class Wires:
    u: Any
    _a: int
    p: Any

    def readinto(self, b):
        return self.u.readinto(b)

    def write(self, b):
        self.u.write(b)

    def pulse(self, ms):
        if self.p is not None:
            self.p.value(self._a)
            time.sleep_ms(ms)
            self.p.value(1 - self._a)
