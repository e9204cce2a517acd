"""A simulated cellular modem for virtual boards: a host process the board's UART talks to.

This module is the modem without its dialect (life, UART, faults, the broker session); the
SIM7080G's AT commands are ``hardware/modem_sim7080.py`` (``Sim7080``), the one dialect so far.

The firmware's modem wires on the unix port (``firmware/lib/modem_io.py``) are a TCP socket to
``127.0.0.1:PORT``; a PWRKEY pulse closes it and connects again, which this modem takes as a
power-on: it boots (``RDY`` after ``boot_s``) with its state lost. It speaks the SIM7080G
subset the firmware uses (``firmware/CELLULAR.md``) with delays of the real thing
(registration takes ``reg_s`` seconds), and ``AT+SMCONN`` opens a real MQTT session to the
broker (paho), so a reading goes firmware → AT → this modem → Mosquitto → gateway → InfluxDB.
``AT+SMPUB`` answers OK only after the broker's PUBACK.

Faults, as methods or from a JSON file polled every 200 ms (the board's ``faults.json``):

- ``cell_down()`` / ``cell_up()`` (``"cell": "down"``): no coverage: ``+CEREG: 2``, the PDP
  context and the MQTT session drop with their URCs; coverage back: registered ``reg_s`` later.
- ``modem_reset()`` (``"modem_reset": N``, each new N): the modem restarts, prints ``RDY``.
- ``"sim": "missing"`` (``+CME ERROR: 10``), ``"reg": "denied"`` (``+CEREG: 0,3``),
  ``"modem_slow_ms": N`` (every answer N ms late), ``"modem_garble": true`` (noise before
  every answer).

    modem = Sim7080(faults=Path("flash/faults.json")).start()   # the board's cell.sim_port = modem.port
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any, Self

from hardware.modem_link import BrokerLink

_LOGGER = logging.getLogger(__name__)
_POLL_S = 0.2


class ModemSim:
    def __init__(self, *, port: int = 0, faults: Path | None = None, reg_s: float = 3.0,
                 boot_s: float = 1.0, pdp_s: float = 0.5, name: str = "modem") -> None:
        self._server = socket.create_server(("127.0.0.1", port))
        self.port: int = self._server.getsockname()[1]
        self.faults_file = faults
        self.reg_s, self.boot_s, self.pdp_s = reg_s, boot_s, pdp_s
        self.name = name
        self.covered = True
        self.sim = True
        self.denied = False
        self.slow_ms = 0
        self.garble = False
        self._reset_n: Any = None
        self._sig: tuple[int, int] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._mqtt: BrokerLink | None = None
        self.published = 0  # messages the broker PUBACKed
        self.sessions = 0
        self.commands: list[str] = []
        self._deaf_until = 0.0
        self._new_session()

    # -- life ---------------------------------------------------------------------------
    def start(self) -> Self:
        threading.Thread(target=self._accept, name=f"{self.name}-accept", daemon=True).start()
        threading.Thread(target=self._watch, name=f"{self.name}-faults", daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._mqtt_down()
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def _new_session(self) -> None:
        self.echo = True
        self.cereg_n = 0
        self.pdp = False
        self.subs: list[str] = []
        self.conf: dict[str, str] = {}
        self._reg_at = time.monotonic() + self.reg_s

    # -- faults ---------------------------------------------------------------------------
    def cell_down(self) -> None:
        with self._lock:
            if not self.covered:
                return
            self.covered = False
            _LOGGER.info("%s: cell down", self.name)
            if self.cereg_n:
                self._urc("+CEREG: 2")
            self._drop_pdp()

    def cell_up(self) -> None:
        with self._lock:
            if self.covered:
                return
            self.covered = True
            self._reg_at = time.monotonic() + self.reg_s
            _LOGGER.info("%s: cell up (registered in %.1f s)", self.name, self.reg_s)

    def modem_reset(self) -> None:
        with self._lock:
            _LOGGER.info("%s: modem reset", self.name)
            self._mqtt_down()
            self._new_session()
            self._deaf_until = time.monotonic() + self.boot_s  # rebooting: no answers
        time.sleep(self.boot_s)
        self._urc("RDY")

    def _drop_pdp(self) -> None:
        was = self._mqtt is not None
        self._mqtt_down()
        if was:
            self._urc("+SMSTATE: 0")
        if self.pdp:
            self.pdp = False
            self._urc("+APP PDP: 0,DEACTIVE")

    def _watch(self) -> None:
        while not self._stop.wait(_POLL_S):
            f = self.faults_file
            if f is None:
                continue
            try:
                st = f.stat()
                sig = (st.st_size, st.st_mtime_ns)
            except OSError:
                sig = None
            if sig is None or sig == self._sig:
                continue
            self._sig = sig
            try:
                got = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(got, dict):
                self.apply(got)

    def apply(self, faults: dict[str, Any]) -> None:
        """The cell's faults from a faults.json document (keys above; absent = healthy)."""
        if faults.get("cell") == "down":
            self.cell_down()
        else:
            self.cell_up()
        self.sim = faults.get("sim") != "missing"
        self.denied = faults.get("reg") == "denied"
        slow = faults.get("modem_slow_ms", 0)
        self.slow_ms = slow if isinstance(slow, int) else 0
        self.garble = faults.get("modem_garble") is True
        n = faults.get("modem_reset")
        if n is not None and n != self._reset_n:
            first = self._reset_n is None and self.sessions == 0
            self._reset_n = n
            if not first:
                threading.Thread(target=self.modem_reset, daemon=True).start()

    # -- the UART ---------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:  # a new connection is a power-on: the old session is gone
                old, self._conn = self._conn, conn
                self._mqtt_down()
                self._new_session()
                self.sessions += 1
            if old is not None:
                old.close()
            _LOGGER.info("%s: power on (session %d)", self.name, self.sessions)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket, text: str) -> None:
        data = text.encode()
        with self._lock:
            if self._conn is not conn:
                return
            try:
                conn.sendall(data)
            except OSError:
                pass

    def _urc(self, line: str) -> None:
        conn = self._conn
        if conn is not None:
            self._send(conn, f"\r\n{line}\r\n")

    def _serve(self, conn: socket.socket) -> None:
        time.sleep(self.boot_s)
        self._send(conn, "\r\nRDY\r\n")
        buf = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    if self._conn is conn:  # the board powered the modem off
                        self._conn = None
                        self._mqtt_down()
                return
            buf += data
            while b"\r" in buf:
                i = buf.index(b"\r")
                line, buf = buf[:i].decode(errors="replace").strip("\n"), buf[i + 1:]
                if not line:
                    continue
                self.commands.append(line)
                if time.monotonic() < self._deaf_until:
                    continue
                if self.echo:
                    self._send(conn, line + "\r")
                if self.slow_ms:
                    time.sleep(self.slow_ms / 1000)
                if self.garble:
                    self._send(conn, "\r\n\x00\xff#~+CS\r\n")
                try:
                    buf = self._answer(conn, line, buf)
                except Exception:  # a bug here must not take the UART down: said, and ERROR
                    _LOGGER.exception("%s: answering %r", self.name, line)
                    self._err(conn)

    def _ok(self, conn: socket.socket, *lines: str) -> None:
        self._send(conn, "".join(f"\r\n{x}\r\n" for x in lines) + "\r\nOK\r\n")

    def _err(self, conn: socket.socket, what: str = "ERROR") -> None:
        self._send(conn, f"\r\n{what}\r\n")

    def _stat(self) -> int:
        if self.denied:
            return 3
        return 1 if self.covered and time.monotonic() >= self._reg_at else 2

    def _answer(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        """One command line c answered; returns what is left of the bytes read (a dialect's)."""
        raise NotImplementedError

    # -- MQTT ---------------------------------------------------------------------------
    def _connect(self) -> bool:
        if not self.pdp:
            return False
        link = BrokerLink(self.conf, self._on_message, self._on_lost)
        if not link.open():
            return False
        self._mqtt = link
        return True

    def _on_message(self, link: BrokerLink, topic: str, payload: bytes) -> None:
        if link is self._mqtt:
            self._urc(f'+SMSUB: "{topic}","{payload.decode(errors="replace")}"')

    def _on_lost(self, link: BrokerLink) -> None:
        with self._lock:
            if link is self._mqtt:  # the broker went away: the session URC
                self._mqtt = None
                self._urc("+SMSTATE: 0")

    def _mqtt_down(self, clean: bool = False) -> None:
        m, self._mqtt = self._mqtt, None
        if m is not None:
            m.close(clean)

def main(argv: list[str] | None = None) -> int:
    """``python -m hardware.modem_sim --port P [--faults FILE]``: one modem until Ctrl-C."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m hardware.modem_sim", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=7080)
    p.add_argument("--faults", type=Path)
    p.add_argument("--reg-s", type=float, default=3.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from hardware.modem_sim7080 import Sim7080

    modem = Sim7080(port=a.port, faults=a.faults, reg_s=a.reg_s).start()
    print(f"simulated SIM7080G on 127.0.0.1:{modem.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        modem.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
