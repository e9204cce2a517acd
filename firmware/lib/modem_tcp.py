# Sen firmware: the modem's wires on the unix port (a virtual board), the interface of
# modem_io.py: a TCP socket to the simulated modem (hardware/modem_sim.py) on
# 127.0.0.1:cell.sim_port; a PWRKEY pulse closes it and connects again, which the simulated
# modem takes as a power-on (it boots and prints its ready URC). No modem there: a modem
# that does not answer.
import socket


class Wires:
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
        self._close()
        s = socket.socket()
        try:
            s.connect(socket.getaddrinfo("127.0.0.1", self._port)[0][-1])
            s.setblocking(False)
            self.s = s
        except OSError:
            s.close()
