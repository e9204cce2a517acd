"""The simulated SIM7080G (hardware/modem_sim*.py) at its UART, without firmware or broker: the
faults that come mid-session as on a network, the SIM pulled out and registration denied, and
the way back. The firmware through them, end to end: tests/integration/test_cellular.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from hardware.modem_sim7080 import Sim7080


class Uart:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = ""

    def until(self, needle: str, timeout: float = 5.0) -> str:
        """Everything read up to and including NEEDLE (then dropped from the buffer)."""
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                data = b""
            if not data and time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} in {self.buf!r}")
            self.buf += data.decode(errors="replace")
        i = self.buf.index(needle) + len(needle)
        got, self.buf = self.buf[:i], self.buf[i:]
        return got

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r")
        return self.until("OK\r\n")


@pytest.fixture
def attached() -> Iterator[tuple[Sim7080, Uart]]:
    modem = Sim7080(reg_s=0.2, boot_s=0.05, pdp_s=0.05, name="t").start()
    uart = Uart(modem.port)
    try:
        uart.until("RDY")
        for line in ("ATE0", "AT+CEREG=2"):
            uart.cmd(line)
        time.sleep(0.3)
        assert "+CEREG: 2,1," in uart.cmd("AT+CEREG?")
        uart.cmd("AT+CNACT=0,1")
        uart.until("+APP PDP: 0,ACTIVE")
        yield modem, uart
    finally:
        uart.sock.close()
        modem.close()


def test_the_sim_pulled_out_mid_session_and_put_back(attached: tuple[Sim7080, Uart]) -> None:
    modem, uart = attached
    modem.apply({"sim": "missing"})
    lost = uart.until("+APP PDP: 0,DEACTIVE")
    assert lost.index("+CPIN: NOT READY") < lost.index("+CEREG: 0") < lost.index("+APP PDP: 0,DEACTIVE"), lost
    assert "+CEREG: 2,0\r\n" in uart.cmd("AT+CEREG?")
    uart.sock.sendall(b"AT+CNACT=0,1\r")
    assert "ERROR" in uart.until("ERROR\r\n")  # no PDP without a network
    modem.apply({})
    assert "+CEREG: 2,2\r\n" in uart.cmd("AT+CEREG?")  # searching: registered reg_s later
    time.sleep(0.3)
    assert "+CEREG: 2,1," in uart.cmd("AT+CEREG?")


def test_registration_denied_mid_session_and_allowed_again(attached: tuple[Sim7080, Uart]) -> None:
    modem, uart = attached
    modem.apply({"reg": "denied"})
    lost = uart.until("+APP PDP: 0,DEACTIVE")
    assert "+CEREG: 3" in lost and "+CPIN" not in lost, lost
    assert "+CEREG: 2,3\r\n" in uart.cmd("AT+CEREG?")
    modem.apply({"reg": "denied"})  # the same faults again (the file polled): no news
    assert "+CEREG: 2,3\r\n" in uart.cmd("AT+CEREG?") and "+CEREG: 3" not in uart.buf
    modem.apply({})
    time.sleep(0.3)
    assert "+CEREG: 2,1," in uart.cmd("AT+CEREG?")
