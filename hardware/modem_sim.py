"""A simulated cellular modem for virtual boards: a host process the board's UART talks to.

This module is the modem without its dialect: life, the UART, faults, the 3GPP commands every
family shares (sync, echo, SIM, registration, signal, operator, CFUN, PDP definition, the
``ATD*99#`` dial into data mode) and the broker session. The MQTT commands are a dialect's:
``hardware/modem_sim7080.py`` (SIM7080G: ``AT+SM...``), ``hardware/modem_sim_a76xx.py`` (A7670 /
A7680: ``AT+CMQTT...``); ``hardware/modem_sims.py`` picks one by name.

The firmware's modem wires on the unix port (``firmware/lib/modem_tcp.py``) are a TCP socket to
``127.0.0.1:PORT``; a PWRKEY pulse closes it and connects again, which this modem takes as a
power-on: it boots (its ready URC after ``boot_s``) with its state lost. Delays of the real
thing: registration ``reg_s``, PDP activation ``pdp_s``; ``baud`` paces the UART (8N1). The
MQTT session is a real paho session to the broker the board configured
(``hardware/modem_link.py``); a publish is answered only after the broker's PUBACK.

Faults, as methods or from a JSON file polled every 200 ms (the board's ``faults.json``):
``cell_down()`` / ``cell_up()`` (``"cell": "down"``: ``+CEREG: 2``, the PDP context and the
MQTT session drop with their URCs; coverage back: registered ``reg_s`` later),
``modem_reset()`` (``"modem_reset": N``, each new N: the modem restarts), ``"sim": "missing"``
(``+CME ERROR: 10``), ``"reg": "denied"`` (stat 3), ``"modem_slow_ms": N`` (every answer N ms
late), ``"modem_garble": true`` (noise before every answer).
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
    # a dialect's URCs: started, MQTT session lost, PDP context lost
    READY, MQTT_LOST, PDP_LOST = "RDY", "", ""

    def __init__(self, *, port: int = 0, faults: Path | None = None, reg_s: float = 3.0,
                 boot_s: float = 1.0, pdp_s: float = 0.5, name: str = "modem", baud: int | None = None) -> None:
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
        # the UART: bytes each way (rx: from the board), and its speed (None: unpaced; a baud
        # rate: 8N1, both directions paced to baud / 10 bytes per second)
        self.uart_rx = self.uart_tx = 0
        self.baud = baud
        self._line_t = [0.0, 0.0]
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
        self.data_mode = False  # after ATD*99# -> CONNECT: PPP frames, not AT, until "+++"
        self._reg_at = time.monotonic() + self.reg_s

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
        self._urc(self.READY)

    def _drop_pdp(self) -> None:
        was = self._mqtt is not None
        self._mqtt_down()
        if was:
            self._urc(self.MQTT_LOST)
        if self.pdp:
            self.pdp = False
            self._urc(self.PDP_LOST)

    def _watch(self) -> None:
        while not self._stop.wait(_POLL_S):
            f = self.faults_file
            if f is None:
                continue
            try:
                st = f.stat()
            except OSError:
                continue
            if (sig := (st.st_size, st.st_mtime_ns)) == self._sig:
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
        self.slow_ms = slow if isinstance(slow := faults.get("modem_slow_ms", 0), int) else 0
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

    def _line(self, n: int, way: int) -> None:
        """N bytes on the UART one WAY (0 to the board, 1 from it) take their time at self.baud."""
        if self.baud:
            now = time.monotonic()
            t = self._line_t[way] = max(self._line_t[way], now) + n * 10 / self.baud
            time.sleep(t - now)

    def _recv(self, conn: socket.socket) -> bytes:
        try:
            data = conn.recv(4096)
        except OSError:
            return b""
        self.uart_rx += len(data)
        self._line(len(data), 1)
        return data

    def _send(self, conn: socket.socket, text: str) -> None:
        data = text.encode()
        if self._conn is not conn:
            return
        self._line(len(data), 0)
        with self._lock:
            if self._conn is not conn:
                return
            try:
                conn.sendall(data)
                self.uart_tx += len(data)
            except OSError:
                pass

    def _urc(self, line: str) -> None:
        conn = self._conn
        if conn is not None:
            self._send(conn, f"\r\n{line}\r\n")

    def _serve(self, conn: socket.socket) -> None:
        time.sleep(self.boot_s)
        self._send(conn, f"\r\n{self.READY}\r\n")
        buf = b""
        while not self._stop.is_set():
            data = self._recv(conn)
            if not data:
                with self._lock:
                    if self._conn is conn:  # the board powered the modem off
                        self._conn = None
                        self._mqtt_down()
                conn.close()  # not left to the garbage collector (a ResourceWarning at some later test)
                return
            buf += data
            if self.data_mode:
                if b"+++" not in buf:
                    buf = b""
                    continue
                self.data_mode, buf = False, b""  # escaped to command mode
                self._send(conn, "\r\nOK\r\n")
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
        return 3 if self.denied else 1 if self.covered and time.monotonic() >= self._reg_at else 2

    def _answer(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        """One command line c answered -> what is left of the bytes read (modem_sim_3gpp.py)."""
        raise NotImplementedError

    def _message(self, topic: str, payload: bytes) -> str:
        """The URC(s) of a message from the broker on a subscription (a dialect's)."""
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
            self._urc(self._message(topic, payload))

    def _on_lost(self, link: BrokerLink) -> None:
        with self._lock:
            if link is self._mqtt:  # the broker went away: the session URC
                self._mqtt = None
                self._urc(self.MQTT_LOST)

    def _mqtt_down(self, clean: bool = False) -> None:
        m, self._mqtt = self._mqtt, None
        if m is not None:
            m.close(clean)
