# Sen firmware: the modem's wires on the unix port (a virtual board), the interface of
# modem_io.py (readinto, write, pulse): a TCP socket to the simulated modem
# (hardware/modem_sim.py) on 127.0.0.1:cell.sim_port; a PWRKEY pulse closes it and connects
# again, which the simulated modem takes as a power-on (it boots and prints its ready URC).
# No modem there, or the socket gone: a modem that does not answer.
import socket

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass


# Built by cellcfg.py, which sets _port (cell.sim_port), s = None and calls pulse(0): no
# constructor stays in the heap
class Wires:
    _port: int
    s: Any

    # -> n, None (nothing there: EAGAIN, or no socket) or 0 (the simulated modem went away:
    # powered off; the socket is closed)
    def readinto(self, b):
        s = self.s
        if s is None:
            return None
        try:
            n = s.readinto(b)
        except OSError:
            return None
        if n == 0:
            self.pulse(-1)
        return n

    def write(self, b):
        if self.s is not None:
            try:
                self.s.send(b)
            except OSError:
                self.pulse(-1)

    # ms < 0: the socket closed, nothing more
    def pulse(self, ms):
        if self.s is not None:
            self.s.close()
            self.s = None
        if ms < 0:
            return
        s = socket.socket()
        try:
            s.connect(socket.getaddrinfo("127.0.0.1", self._port)[0][-1])
            s.setblocking(False)
            self.s = s
        except OSError:
            s.close()
