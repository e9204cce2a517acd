"""The SIM7080G dialect of the simulated modem (``hardware/modem_sim.py``): its AT commands.

The subset the firmware uses (``firmware/CELLULAR.md``): sync, echo, SIM, registration, signal,
operator, CFUN, the PDP context (``AT+CNACT``, OK first and ``+APP PDP: 0,ACTIVE`` later), the
MQTT stack (``AT+SMCONF``, ``AT+SMCONN``, ``AT+SMSUB``, ``AT+SMPUB`` with its ``> `` prompt,
``AT+SMSTATE?``, ``AT+SMDISC``) and ``AT+CPOWD=1``; anything else is ``ERROR``.

    modem = Sim7080(faults=Path("flash/faults.json")).start()   # the board's cell.sim_port = modem.port
"""

from __future__ import annotations

import socket
import threading
import time

from hardware.modem_sim import ModemSim
from hardware.vboard import VirtualBoard


class Sim7080(ModemSim):
    def _answer(self, conn: socket.socket, c: str, rest: bytes) -> bytes:
        u = c.upper()
        if u in ("AT", "AT+CMEE=1", "AT+CPSMS=0") or u.startswith(("AT+CPSMS=", "AT+CEDRXS=", "AT+CGDCONT=")):
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
            st = self._stat() if self.sim else 0
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
        elif u.startswith("AT+CNCFG="):
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
        elif u == "AT+CPOWD=1":
            self._send(conn, "\r\nNORMAL POWER DOWN\r\n")
            with self._lock:
                self._mqtt_down()
                if self._conn is conn:
                    self._conn = None
            conn.close()
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
            try:
                more = conn.recv(4096)
            except OSError:
                more = b""
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


def attach(board: VirtualBoard, *, reg_s: float = 3.0) -> Sim7080:
    """Make BOARD a cellular board on a simulated SIM7080G of its own (``sen sim --cellular``):
    its config gets ``"transport": "cellular"`` and a ``cell`` for the modem's port; the modem
    watches the board's faults.json (``cell``, ``modem_reset``...). Call before ``start()``."""
    modem = Sim7080(faults=board.flash_dir / "faults.json", reg_s=reg_s, name=board.device).start()
    board.config["transport"] = "cellular"
    # the simulator's 2 s ack timeout resends faster than a cell's round trip and the gateway's
    # ack pacing: its acks then never caught up (seen with sen sim's default); the firmware's 15 s
    board.config["ack_timeout_ms"] = max(int(board.config.get("ack_timeout_ms", 15000)), 15000)
    board.config["cell"] = {"apn_preset": "viettel", "sim_port": modem.port, "reg_poll_ms": 500,
                            "backoff_ms": 500, "backoff_max_ms": 8000, "boot_ms": 5000}
    return modem
