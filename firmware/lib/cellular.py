# Sen firmware: the cellular transport: a UART modem's own MQTT stack, driven over AT
# commands (at.py) through a modem family file (modem_sim7080.py, modem_a76xx.py). Loaded
# only when config.json says "transport": "cellular"; its settings are config.json's "cell"
# (cellcfg.py; firmware/CELLULAR.md). Same interface as MQTTClient (mqtt.py), so the app
# does not care which it has: publish() queues, run() is the one task that touches the
# modem, wait_ack() waits for the modem's OK of that publish (the gateway's end-to-end ack
# does the rest, as on WiFi).
# This module is the steady state, what stays in the heap: the queue, the URCs, the
# diagnostics, the connected loop. The way up (power-on, SIM, PSM/eDRX, registration, PDP,
# MQTT connect, subscriptions) and the recovery ladder's climb (0 reconnect MQTT, 1
# re-activate PDP, 2 airplane mode, 3 power-cycle, each step logged and counted in diag
# cell_rungs) are cellup.py with its steps cellnet.py and the family's cellup_<family>.py,
# loaded by run() for each climb and dropped once the session is up; the constructor is
# cellcfg.client(), run once (firmware/CELLULAR.md, Memory).
# A URC says where the link fell: +SMSTATE: 0 (MQTT, rung 0), PDP deactivated (rung 1), RDY
# (the modem restarted, rung 2).
import gc
import sys
import time

import asyncio
import payload
from at import OK
from micropython import const

payload._D = dict.fromkeys(range(17))  # the envelope's d: this transport's 14 keys and room

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass

_STEP_MS = const(20)
_CHECK_MS = const(30000)  # when idle: signal and session checked this often
RUNGS = ("mqtt", "pdp", "cfun", "power")


# Built by cellcfg.client(), which sets every attribute: no constructor code stays in the heap
# (the annotations are for the type checker; the VM compiles none of them)
class Cellular:
    # the broker, the client id and will (_w), the log, the cell settings (c), the wires
    # (io), the AT engine (at), the family's module (m); what the app sets
    host: Any
    port: Any
    keepalive: Any
    _w: Any
    _log: Any
    c: Any
    io: Any
    at: Any
    m: Any
    on_connect: Any
    on_message: Any
    net_connect: Any
    subs: Any
    user: Any
    ca: Any
    password: Any
    tls: Any
    # the state: the queue, the session, the ladder, the diagnostics
    _q: Any
    connected: Any
    _stop: Any
    connects: Any
    _pid: Any
    _lost: Any
    rungs: Any
    rssi: Any
    reg: Any
    op: Any
    ci: Any

    async def publish(self, topic, msg, qos=1, retain=False):
        self._pid = p = self._pid % 65535 + 1
        self._q.append([p, topic, msg, retain])
        return p

    # Until the modem's OK for publish pid; with no pid (wait_idle) until nothing is queued.
    async def wait_ack(self, pid=0):
        while self._q and (not pid or [e for e in self._q if e[0] == pid]):
            await asyncio.sleep_ms(_STEP_MS)

    wait_idle = wait_ack

    async def wait_connected(self):
        while not self.connected:
            await asyncio.sleep_ms(_STEP_MS)

    # The end of the board's run: the session closed and the modem powered down (AT+CPOWD),
    # also before deep sleep.
    async def disconnect(self):
        self._stop = True
        if self.connected:
            await self.m.disc()
        self.connected = False
        await self.at.cmd("AT+CPOWD=1", 3000)

    # Diagnostics for the envelope's d (key by key: no table of them built while d grows)
    def diag(self, d):
        if self.rssi is not None:
            d["rssi_dbm"] = self.rssi
        if self.reg is not None:
            d["cell_reg"] = self.reg
        if self.op is not None:
            d["cell_op"] = self.op
        if self.ci is not None:
            d["cell_id"] = self.ci
        d["cell_tx_b"] = self.at.tx
        d["cell_rx_b"] = self.at.rx
        d["cell_rungs"] = "%d/%d/%d/%d" % tuple(self.rungs)

    def _urc(self, line):
        if line.startswith("+CEREG:"):  # +CEREG: <stat>[,<tac>,<ci>,<act>] (AT+CEREG=2)
            f = line[7:].split(",")
            try:
                st = int(f[0])
            except ValueError:
                return
            if st != self.reg:
                self._log("cell: registration %d" % st)
            self.reg = st
            if len(f) > 2:
                self.ci = f[2].strip('"')
            return
        r = self.m.urc(line)
        if isinstance(r, tuple):
            if self.on_message is not None:
                self.on_message(r[0], r[1], False)
        elif r is not None and not self._stop:
            self._log("cell: %s: down to rung %s" % (line[:40], RUNGS[r]))
            self._lost = max(self._lost, r)
            if self.connected:
                self.at.abort = True  # a publish in flight will get no answer: stop waiting

    # The connection manager, for the life of the board: a climb to a session, then the session
    # until the link falls. A climb is steps, each a module loaded for it and dropped before the
    # next loads (cellup.py, cellnet.py, cellup_<family>.py: cellup.py says how); a step's go()
    # -> the next step (module, argument), True (up) or False (disconnect() came first).
    async def run(self):
        r = 3  # a cold start: power the modem on (or find it on)
        while not self._stop:
            s = "cellup", (r, 0, None)
            while isinstance(s, tuple) and not self._stop:
                gc.collect()  # a module loads in one piece per function: the most room first
                n = s[0]
                m = __import__(n)
                try:
                    s = await m.go(self, s[1])
                finally:
                    del m
                    del sys.modules[n]
            if s is not True:
                return
            self.connected = True
            self.connects += 1
            if self.on_connect is not None:
                await self.on_connect()
            r = await self._serve()
            self.connected = False

    # "AT" until OK, for at most ms
    async def _sync(self, ms):
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < ms:
            if await self.at.cmd("AT", 500) == OK:
                return True
        return False

    # Connected: sends the queue, checks the session when idle. -> the rung the link fell to
    # (-1: disconnect() ended it).
    async def _serve(self):
        at, m, q = self.at, self.m, self._q
        t = time.ticks_ms()
        while not self._stop:
            if self._lost >= 0:
                return self._lost
            if q:
                e = q[0]
                ok = await m.pub(e[1], e[2], e[3])
                if ok:
                    if q and q[0] is e:
                        q.pop(0)
                    continue
                if self._lost >= 0:
                    return self._lost
                self._log("cell: publish %s" % ("refused" if ok is False else "not answered"))
                return 0 if ok is False or await self._sync(3000) else 2
            if time.ticks_diff(time.ticks_ms(), t) > _CHECK_MS:
                t = time.ticks_ms()
                v = await at.q("AT+CSQ", "+CSQ")  # the signal: <rssi 0..31, 99>,<ber>
                if v is not None:
                    v = int(v.split(",")[0])
                    self.rssi = None if v == 99 else -113 + 2 * v
                elif not await self._sync(3000):
                    return 2
                if await m.alive() is False:
                    return 0
            at.poll()
            await asyncio.sleep_ms(_STEP_MS)
        return -1


# The name app.py imports, as from mqtt: cellcfg.py (dropped once it returns) checks
# config.json's "cell" and builds the modem's own MQTT stack (Cellular) or, with cell.mode
# "ppp", Sen's MQTT client over a PPP link through the modem (ppp.py).
def MQTTClient(*a):
    gc.collect()
    m = __import__("cellcfg")
    del sys.modules["cellcfg"]
    return m.client(*a)
