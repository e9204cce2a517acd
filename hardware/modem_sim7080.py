"""The SIM7080G dialect of the simulated modem (``hardware/modem_sim.py``): its AT commands.

The subset the firmware uses (``firmware/CELLULAR.md``) beyond the shared 3GPP commands
(``hardware/modem_sim_3gpp.py``): the PDP context (``AT+CNACT``, OK first and
``+APP PDP: 0,ACTIVE`` later), the MQTT stack (``AT+SMCONF``, ``AT+SMCONN``, ``AT+SMSUB``,
``AT+SMPUB`` with its ``> `` prompt, ``AT+SMSTATE?``, ``AT+SMDISC``); anything else is ``ERROR``.

    modem = Sim7080(faults=Path("flash/faults.json")).start()   # the board's cell.sim_port = modem.port
"""

from __future__ import annotations

import socket
import threading
import time

from hardware.modem_sim_3gpp import Modem3gpp


class Sim7080(Modem3gpp):
    READY, MQTT_LOST, PDP_LOST = "RDY", "+SMSTATE: 0", "+APP PDP: 0,DEACTIVE"

    def _message(self, topic: str, payload: bytes) -> str:
        return f'+SMSUB: "{topic}","{payload.decode(errors="replace")}"'

    def _dialect(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        u = c.upper()
        if u.startswith("AT+CNCFG="):
            self._ok(conn)
        elif u == "AT+CNACT?":
            self._ok(conn, f'+CNACT: 0,{int(self.pdp)},"{"10.0.0.9" if self.pdp else "0.0.0.0"}"')
        elif u == "AT+CNACT=0,1":
            if self._stat() != 1:
                self._err(conn)
                return rest
            self._ok(conn)
            threading.Timer(self.pdp_s, self._pdp_up, args=(conn,)).start()
        elif u == "AT+CNACT=0,0":
            with self._lock:
                self._drop_pdp()
            self._ok(conn)
        elif u.startswith("AT+SMCONF="):
            k, _, v = c[10:].partition(",")
            self.conf[k.strip('"').upper()] = v
            self._ok(conn)
        elif u == "AT+SMCONN":
            if self._connect():
                self._ok(conn)
            else:
                self._err(conn)
        elif u == "AT+SMDISC":
            if self._mqtt is None:
                self._err(conn)
            else:
                self._mqtt_down(clean=True)
                self._ok(conn)
        elif u == "AT+SMSTATE?":
            self._ok(conn, f"+SMSTATE: {int(self._mqtt is not None)}")
        elif u.startswith("AT+SMSUB="):
            topic = c.split('"')[1]
            m = self._mqtt
            if m is None or not m.subscribe(topic):
                self._err(conn)
                return rest
            self.subs.append(topic)
            self._ok(conn)
        elif u.startswith("AT+SMPUB="):
            return self._publish(conn, c, rest)
        else:
            self._err(conn)
        return rest

    def _pdp_up(self, conn: socket.socket) -> None:
        with self._lock:
            if self._conn is conn and self._stat() == 1:
                self.pdp = True
                self._urc("+APP PDP: 0,ACTIVE")

    def _publish(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        f = c.split('"')
        n, qos, retain = (int(x) for x in f[2].strip(",").split(","))
        m = self._mqtt
        if m is None:
            self._err(conn)
            return rest
        self._send(conn, "\r\n> ")
        deadline = time.monotonic() + 10
        while len(rest) < n and time.monotonic() < deadline:
            more = self._recv(conn)
            if not more:
                return b""
            rest += more
        data, rest = rest[:n], rest[n:]
        if m.publish(f[1], data, qos, bool(retain)) and self._mqtt is m:
            self.published += 1
            self._ok(conn)
        else:
            self._err(conn)
        return rest
