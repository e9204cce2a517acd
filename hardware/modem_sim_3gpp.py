"""The commands every simulated modem family shares (``hardware/modem_sim.py``): 3GPP TS 27.007.

Sync, echo, error codes, SIM (``AT+CPIN?``), registration (``AT+CEREG``), signal, operator,
``AT+CFUN``, ``AT+CPOWD=1``, the PDP definition (``AT+CGDCONT``), PSM / eDRX, and the dial into data mode for
PPP (``ATD*99#`` or ``AT+CGDATA="PPP",1`` -> ``CONNECT``, or ``NO CARRIER`` when not
registered). In data mode the board's PPP stack would speak LCP/IPCP: not modelled, its bytes
are counted and dropped until the ``+++`` escape (``OK``, back to commands). Anything else
goes to the dialect's ``_dialect``.

Faults that come mid-session as they do on a network: the SIM pulled out (``"sim": "missing"``:
``+CPIN: NOT READY``, registration 0, the PDP context and the MQTT session dropped with their
URCs) and registration denied (``"reg": "denied"``: ``+CEREG: 3``, the same drops); either
lifted, the modem registers ``reg_s`` later.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from hardware.modem_sim import ModemSim


class Modem3gpp(ModemSim):
    def apply(self, faults: dict[str, Any]) -> None:
        with self._lock:
            had_sim, was_denied = self.sim, self.denied
            super().apply(faults)
            if had_sim and not self.sim:
                self._detach("+CPIN: NOT READY", "+CEREG: 0")
            elif self.denied and not was_denied:
                self._detach("+CEREG: 3")
            elif (self.sim and not had_sim) or (was_denied and not self.denied):
                self._reg_at = time.monotonic() + self.reg_s  # back: registered reg_s later

    def _detach(self, *urcs: str) -> None:
        """The network is gone for this modem: its URCs, then the PDP context and the session."""
        for line in urcs:
            if not line.startswith("+CEREG:") or self.cereg_n:
                self._urc(line)
        self._drop_pdp()

    def _stat(self) -> int:
        return super()._stat() if self.sim else 0

    def _answer(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        """One command line c answered: a shared 3GPP command here, else the dialect's
        (``_dialect``). Returns what is left of the bytes read."""
        u = c.upper()
        if u in ("AT", "AT+CMEE=1", "ATH") or u.startswith(("AT+CPSMS=", "AT+CEDRXS=", "AT+CGDCONT=")):
            self._ok(conn)
        elif u == "ATE0":
            self.echo = False
            self._ok(conn)
        elif u.startswith("AT+CEREG="):
            self.cereg_n = int(u[9:] or 0)
            self._ok(conn)
        elif u == "AT+CPIN?":
            if self.sim:
                self._ok(conn, "+CPIN: READY")
            else:
                self._err(conn, "+CME ERROR: 10")
        elif u == "AT+CEREG?":
            st = self._stat()
            tail = ',"1A2B","01A2B3C4",7' if st in (1, 5) and self.cereg_n >= 2 else ""
            self._ok(conn, f"+CEREG: {self.cereg_n},{st}{tail}")
        elif u == "AT+CSQ":
            self._ok(conn, "+CSQ: 18,99" if self.covered else "+CSQ: 99,99")
        elif u == "AT+COPS?":
            self._ok(conn, '+COPS: 0,0,"Viettel",9' if self._stat() == 1 else "+COPS: 0")
        elif u.startswith("AT+CFUN="):
            with self._lock:
                if u.endswith("=0"):
                    self._drop_pdp()
                else:
                    self._reg_at = time.monotonic() + self.reg_s
            self._ok(conn)
        elif u in ("ATD*99#", "ATD*99***1#", "AT+CGDATA=\"PPP\",1"):
            # data mode: the board's PPP stack would speak LCP/IPCP now (not modelled: its
            # bytes are counted and dropped until the "+++" escape)
            if self._stat() != 1:
                self._send(conn, "\r\nNO CARRIER\r\n")
            else:
                self.data_mode = True
                self._send(conn, "\r\nCONNECT 150000000\r\n")
        elif u == "AT+CPOWD=1":
            self._send(conn, "\r\nNORMAL POWER DOWN\r\n")
            with self._lock:
                self._mqtt_down()
                if self._conn is conn:
                    self._conn = None
            conn.close()
        else:
            return self._dialect(conn, c, rest)
        return rest

    def _dialect(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        """A family's own command (its MQTT stack, its PDP activation): ERROR when unknown."""
        self._err(conn)
        return rest
