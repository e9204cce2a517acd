# Sen firmware: the modem's wires, the HAL part of the cellular transport (loaded only when
# it is configured): its UART and its PWRKEY pin. open(cell) -> an object with read() ->
# bytes or None (non-blocking), write(bytes), pulse(ms) (PWRKEY held active for ms).
# ESP32: machine.UART and machine.Pin from config.json's "cell": uart (UART id, default 1),
# tx, rx, baud (115200), pwrkey (GPIO), pwrkey_active (1: the pin drives a transistor that
# pulls PWRKEY low, as on LilyGO's T-SIM7080G; 0: the pin is wired to PWRKEY itself).
# Unix port (a virtual board): a TCP socket to the simulated modem (hardware/modem_sim.py)
# on 127.0.0.1:cell.sim_port; a PWRKEY pulse closes it and connects again, which the
# simulated modem takes as a power-on (it boots and prints RDY).
import sys
import time


class _Esp:
    def __init__(self, c):
        from machine import UART, Pin
        self.u = UART(c.get("uart", 1), baudrate=c.get("baud", 115200), tx=c["tx"], rx=c["rx"],
                      timeout=0, rxbuf=2048)
        self._a = c.get("pwrkey_active", 1)
        self.p = None
        if c.get("pwrkey") is not None:
            self.p = Pin(c["pwrkey"], Pin.OUT, value=1 - self._a)

    def read(self):
        return self.u.read()

    def write(self, b):
        self.u.write(b)

    def pulse(self, ms):
        if self.p is not None:
            self.p.value(self._a)
            time.sleep_ms(ms)
            self.p.value(1 - self._a)


class _Sim:
    def __init__(self, c):
        self._port = c.get("sim_port", 7080)
        self.s = None
        self.pulse(0)

    def read(self):
        s = self.s
        if s is None:
            return None
        try:
            d = s.recv(512)
        except OSError:
            return None  # EAGAIN: nothing there
        if not d:  # the simulated modem went away: powered off
            self._close()
            return None
        return d

    def write(self, b):
        if self.s is not None:
            try:
                self.s.send(b)
            except OSError:
                self._close()

    def _close(self):
        if self.s is not None:
            self.s.close()
            self.s = None

    def pulse(self, ms):
        import socket
        self._close()
        s = socket.socket()
        try:
            s.connect(socket.getaddrinfo("127.0.0.1", self._port)[0][-1])
            s.setblocking(False)
            self.s = s
        except OSError:
            s.close()  # no simulated modem: a modem that does not answer


def open(c):
    return _Esp(c) if sys.platform == "esp32" else _Sim(c)
