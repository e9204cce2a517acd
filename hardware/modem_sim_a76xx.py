"""The A76xx dialect (A7670, A7680: LTE Cat-1) of the simulated modem (``hardware/modem_sim.py``).

The subset ``firmware/lib/modem_a76xx.py`` drives, beyond the shared 3GPP commands
(``hardware/modem_sim_3gpp.py``): the PDP context (``AT+CGAUTH``, ``AT+CGACT=1,1``, answered
after ``pdp_s``), and the MQTT stack: ``AT+CMQTTSTART`` / ``STOP``, ``ACCQ`` / ``REL``,
``WILLTOPIC`` / ``WILLMSG``, ``CONNECT`` (and ``CONNECT?``), ``DISC``, ``SUB``, ``TOPIC``,
``PAYLOAD``, ``PUB``. Topics, payloads and the will go in data mode: the modem prompts ``>``
and takes exactly the announced length. A result comes as a URC after the ``OK``
(``+CMQTTCONNECT: 0,0`` once the broker's CONNACK came, ``+CMQTTPUB: 0,0`` once its PUBACK
came); a message as ``+CMQTTRXSTART``, ``+CMQTTRXTOPIC`` and the topic line,
``+CMQTTRXPAYLOAD`` and the payload line, ``+CMQTTRXEND``; a lost session as
``+CMQTTCONNLOST: 0,1``, a lost PDP context as ``+CGEV: ME PDN DEACT 1``; a start as
``*ATREADY: 1``. The syntax is what firmware/CELLULAR.md lists (not checked against a real
A76xx).
"""

from __future__ import annotations

import socket
import threading
import time

from hardware.modem_sim_3gpp import Modem3gpp

_DATA_S = 5.0  # data mode: the announced bytes must come within this
_ERR = 11  # a +CMQTT result code that is not 0 (the modem's "failed")


class A76xx(Modem3gpp):
    READY, MQTT_LOST, PDP_LOST = "*ATREADY: 1", "+CMQTTCONNLOST: 0,1", "+CGEV: ME PDN DEACT 1"

    def _new_session(self) -> None:
        super()._new_session()
        self.started = False
        self.client: str | None = None
        self.topic = self.payload = b""

    def _message(self, topic: str, payload: bytes) -> str:
        t, p = topic.encode(), payload.replace(b"\r", b"").replace(b"\n", b"")
        return "\r\n".join((f"+CMQTTRXSTART: 0,{len(t)},{len(p)}", f"+CMQTTRXTOPIC: 0,{len(t)}", topic,
                            f"+CMQTTRXPAYLOAD: 0,{len(p)}", p.decode(errors="replace"), "+CMQTTRXEND: 0"))

    def _data(self, conn: socket.socket, rest: bytes, n: int) -> tuple[bytes | None, bytes]:
        """Data mode: the ">" prompt, then exactly n bytes -> (them or None on a timeout, the rest)."""
        self._send(conn, "\r\n>")
        deadline = time.monotonic() + _DATA_S
        while len(rest) < n and time.monotonic() < deadline:
            more = self._recv(conn)
            if not more:
                return None, b""
            rest += more
        return (rest[:n], rest[n:]) if len(rest) >= n else (None, b"")

    def _no(self, conn: socket.socket, rest: bytes, what: str = "ERROR") -> bytes:
        self._err(conn, what)
        return rest

    def _result(self, name: str, code: int) -> None:
        self._urc(f"+{name}: 0,{code}")

    def _dialect(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        u = c.upper()
        f = c.split(",")
        if u.startswith("AT+CGAUTH="):
            self._ok(conn)
        elif u == "AT+CGACT=1,1":
            time.sleep(self.pdp_s)  # the modem answers once the context is up
            with self._lock:
                if self._stat() != 1:
                    self._err(conn)
                    return rest
                self.pdp = True
            self._ok(conn)
        elif u == "AT+CGACT=0,1":
            with self._lock:
                self._drop_pdp()
            self._ok(conn)
        elif u == "AT+CMQTTSTART":
            self._ok(conn)
            self._result("CMQTTSTART", 0 if self.pdp and not self.started else 23)
            self.started = self.started or self.pdp
        elif u == "AT+CMQTTSTOP":
            if not self.started:
                return self._no(conn, rest)
            self.started = False
            self._mqtt_down(clean=True)
            self._ok(conn)
            self._result("CMQTTSTOP", 0)
        elif u.startswith("AT+CMQTTACCQ="):
            if not self.started:
                return self._no(conn, rest)
            self.client = c.split('"')[1]
            self._ok(conn)
        elif u == "AT+CMQTTREL=0":
            was, self.client = self.client, None
            if not was:
                return self._no(conn, rest)
            self._ok(conn)
        elif u.startswith(("AT+CMQTTWILLTOPIC=", "AT+CMQTTWILLMSG=", "AT+CMQTTTOPIC=", "AT+CMQTTPAYLOAD=")):
            data, rest = self._data(conn, rest, int(f[1]))
            if data is None:
                return self._no(conn, rest)
            key = u[8:u.index("=")]
            if key.startswith("WILL"):
                self.conf["WILLTOPIC" if key == "WILLTOPIC" else "WILLMSG"] = data.decode(errors="replace")
                self.conf["WILLQOS"] = f[2] if len(f) > 2 else "0"
            elif key == "TOPIC":
                self.topic = data
            else:
                self.payload = data
            self._ok(conn)
        elif u.startswith("AT+CMQTTCONNECT="):
            return self._connect_cmd(conn, c, rest)
        elif u == "AT+CMQTTCONNECT?":
            m = self._mqtt
            self._ok(conn, f'+CMQTTCONNECT: 0,"tcp://{m.host}:{m.port}",{m.keepalive},1' if m else "+CMQTTCONNECT: 0")
        elif u.startswith("AT+CMQTTDISC="):
            if self._mqtt is None:
                return self._no(conn, rest, "+CME ERROR: 11")
            self._mqtt_down(clean=True)
            self._ok(conn)
            self._result("CMQTTDISC", 0)
        elif u.startswith("AT+CMQTTSUB="):
            data, rest = self._data(conn, rest, int(f[1]))
            m = self._mqtt
            if data is None:
                return self._no(conn, rest)
            self._ok(conn)
            ok = m is not None and m.subscribe(data.decode())
            self._result("CMQTTSUB", 0 if ok else _ERR)
        elif u.startswith("AT+CMQTTPUB="):
            m = self._mqtt
            if m is None or not self.topic:
                return self._no(conn, rest)
            self._ok(conn)
            args = (m, self.topic.decode(), self.payload, int(f[1]), f[3].strip() == "1")
            threading.Thread(target=self._publish, args=args, daemon=True).start()
        else:
            self._err(conn)
        return rest

    def _connect_cmd(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        """AT+CMQTTCONNECT=0,"tcp://host:port",keepalive,clean[,"user","pw"]: OK, then the result."""
        q = c.split('"')
        host, _, port = q[1].removeprefix("tcp://").rpartition(":")
        if not self.started or self.client is None or self._mqtt is not None:
            return self._no(conn, rest)
        self.conf.update(URL=f'"{host}",{port}', KEEPTIME=q[2].split(",")[1], CLIENTID=f'"{self.client}"',
                         USERNAME=f'"{q[3]}"' if len(q) > 3 else '""', PASSWORD=f'"{q[5]}"' if len(q) > 5 else '""')
        self._ok(conn)

        def connect() -> None:
            self._result("CMQTTCONNECT", 0 if self._connect() else _ERR)
        threading.Thread(target=connect, daemon=True).start()
        return rest

    def _publish(self, m: object, topic: str, data: bytes, qos: int, retain: bool) -> None:
        ok = m is self._mqtt and self._mqtt is not None and self._mqtt.publish(topic, data, qos, retain)
        if ok:
            self.published += 1
        self._result("CMQTTPUB", 0 if ok and m is self._mqtt else _ERR)
