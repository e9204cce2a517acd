# Sen firmware: the cellular transport: a UART modem's own MQTT stack, driven over AT
# commands (at.py) through a modem family file (modem_sim7080.py, modem_a76xx.py). Loaded
# only when config.json says "transport": "cellular"; its settings are config.json's "cell"
# (cellcfg.py; firmware/CELLULAR.md). Same interface as MQTTClient (mqtt.py), so the app
# does not care which it has: publish() queues, run() is the one task that touches the
# modem, wait_ack() waits for the modem's OK of that publish (the gateway's end-to-end ack
# does the rest, as on WiFi).
# The state machine, every command with a deadline: power-on (PWRKEY), AT sync, echo off,
# SIM, power saving (PSM/eDRX), registration (+CEREG, its own timeout), APN and PDP, MQTT
# connect, subscribe to ack and cmd. Recovery climbs a ladder, one rung per failure and
# back to the bottom after a success: 0 reconnect MQTT, 1 re-activate PDP, 2 airplane mode
# (AT+CFUN=0/1), 3 power-cycle the modem; each step is logged and counted (diag cell_rungs).
# A URC says where the link fell: +SMSTATE: 0 (MQTT, rung 0), PDP deactivated (rung 1), RDY
# (the modem restarted, rung 2).
import random
import sys
import time

import asyncio
from at import AT, OK
from micropython import const

_STEP_MS = const(20)
_CHECK_MS = const(30000)  # when idle: signal and session checked this often
_PWRKEY_MS = const(1200)
_RUNGS = ("mqtt", "pdp", "cfun", "power")
_DEAF = "the modem does not answer AT"


class Cellular:
    def __init__(self, client_id, host, port, keepalive, will_topic, will_msg, log, io=None, cell=None):
        self.host, self.port, self.keepalive = host, port, keepalive
        self._w = (client_id, will_topic, will_msg)
        self._log = log
        self.c = c = cell
        if io is None:
            io = __import__("modem_io" if sys.platform == "esp32" else "modem_tcp").Wires(c)
        self.io = io
        self.at = at = AT(io, log)
        if c.get("modem") == "a76xx":
            import modem_a76xx as fam
        else:
            import modem_sim7080 as fam  # type: ignore[no-redef]
        self.m = fam.Modem(at, log)
        at.urcs = fam.URCS + ("+CEREG:",)
        at.on_urc = self._urc
        self.net_connect = self.on_connect = self.on_message = None  # the app sets them
        self.subs = []  # type: list
        self.user = self.ca = None
        self.password, self.tls = "", False
        self._q = []  # type: list  # [packet id, topic, msg, retain], in order
        self.connected = self._stop = False
        self.connects = self._pid = self.sent_b = 0
        self._lost = -1  # the rung a URC says the link fell to
        self.rungs = [0, 0, 0, 0]
        self.rssi = self.reg = self.op = self.ci = None

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

    # Diagnostics for the envelope's d
    def diag(self, d):
        if self.rssi is not None:
            d["rssi_dbm"] = self.rssi
        for k, v in (("cell_reg", self.reg), ("cell_op", self.op), ("cell_id", self.ci)):
            if v is not None:
                d[k] = v
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
            self._log("cell: %s: down to rung %s" % (line[:40], _RUNGS[r]))
            self._lost = max(self._lost, r)
            if self.connected:
                self.at.abort = True  # a publish in flight will get no answer: stop waiting

    # The connection manager, for the life of the board.
    async def run(self):
        c = self.c
        r = 3  # a cold start: power the modem on (or find it on)
        d = c["backoff_ms"]
        first = True
        while not self._stop:
            self.rungs[r] += 1
            self._log("cell: up from rung %s (%s times)" % (_RUNGS[r], self.rungs[r]))
            why = await self._up(r, first)
            if self._stop:
                return
            if why is not None:
                # a modem that does not answer AT is power-cycled: the rungs between need it
                r = 3 if why is _DEAF else min(r + 1, 3)
                w = d // 2 + random.getrandbits(16) % (d // 2 + 1)
                self._log("cell: %s; next rung %s in %d ms" % (why, _RUNGS[r], w))
                await asyncio.sleep_ms(w)
                d = min(d * 2, c["backoff_max_ms"])
                continue
            first = False
            d = c["backoff_ms"]
            self.connected = True
            self.connects += 1
            self._log("cell: mqtt up (%s:%d, rssi %s dBm, op %s)" % (self.host, self.port, self.rssi, self.op))
            if self.on_connect is not None:
                await self.on_connect()
            r = await self._serve()
            self.connected = False
            if r >= 0:
                self._log("cell: link lost, rung %s" % _RUNGS[r])

    # Up from rung r -> None, or why not
    async def _up(self, r, first):
        at, m, c = self.at, self.m, self.c
        self._lost = -1
        at.abort = False
        if r < 3 and not await self._sync(5000):
            return _DEAF
        if r >= 2:
            if r == 3 and not await self._power(first):
                return "no answer from the modem after PWRKEY"
            for x in ("ATE0", "AT+CMEE=1", "AT+CEREG=2"):
                await at.cmd(x)
            self._lost = -1  # the RDY of its start is no news
            s = await at.q("AT+CPIN?", "+CPIN")
            if s != "READY":
                return "SIM not ready (%s)" % (s or at.fin or "no answer")
            await self._power_save()
            if r == 2:
                await at.cmd("AT+CFUN=0", 10000)
                await at.cmd("AT+CFUN=1", 10000)
        if r >= 1:
            if r == 1:
                await m.pdp_off()
            self._lost = -1  # the URCs of our own CFUN=0 or PDP down are no news
            why = await self._register()
            if why:
                return why
            if not await m.pdp(c["apn"], c.get("user", ""), c.get("password", "")):
                return "no PDP context (APN %s)" % c["apn"]
        if self.tls:  # never plain text when TLS was asked for
            return "broker.tls: not supported over the modem's MQTT stack yet"
        w = self._w
        if not await m.connect(w[0], self.host, self.port, self.keepalive, self.user, self.password, w[1], w[2]):
            return "MQTT connect to %s:%d failed" % (self.host, self.port)
        for t in self.subs:
            if not await m.sub(t):
                return "subscribe %s failed" % t
        if self._lost >= 0:
            return "lost while connecting"
        return None

    # "AT" until OK, for at most ms
    async def _sync(self, ms):
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < ms:
            if await self.at.cmd("AT", 500) == OK:
                return True
        return False

    # On at first boot if it answers already; else PWRKEY, and once more if the modem does not
    # answer (it was on, and the first pulse switched it off).
    async def _power(self, first):
        if await self._sync(1500):
            if first:
                return True
            await self.at.cmd("AT+CPOWD=1", 3000)
            await asyncio.sleep_ms(2000)
        for _ in range(2):
            self.io.pulse(_PWRKEY_MS)
            if await self._sync(self.c["boot_ms"]):
                return True
        return False

    # PSM (AT+CPSMS) and eDRX (AT+CEDRXS) from cell.psm / cell.edrx, or both off
    async def _power_save(self):
        c, at = self.c, self.at
        p = c.get("psm")
        if p:  # {"tau": "00100001", "active": "00000101"}: 3GPP TS 24.008 timer bytes
            await at.cmd('AT+CPSMS=1,,,"%s","%s"' % (p["tau"], p["active"]))
        else:
            await at.cmd("AT+CPSMS=0")
        e = c.get("edrx")
        if e:  # {"act": 4 (LTE-M) or 5 (NB-IoT), "value": "0101"}
            await at.cmd('AT+CEDRXS=1,%d,"%s"' % (e["act"], e["value"]))

    async def _register(self):
        at, c = self.at, self.c
        t = time.ticks_ms()
        last = None
        while time.ticks_diff(time.ticks_ms(), t) < c["reg_timeout_ms"]:
            v = await at.q("AT+CEREG?", "+CEREG")  # <n>,<stat>[,<tac>,<ci>,<act>]
            f = v.split(",") if v else []
            if len(f) in (1, 4):  # a URC (<stat>[,<tac>,<ci>,<act>]) came first
                f.insert(0, "2")
            st = int(f[1]) if len(f) > 1 and f[1].isdigit() else -1
            self.reg = st
            if st == 1 or st == 5:
                if len(f) > 3:
                    self.ci = f[3].strip('"')
                await self._signal()
                v = await at.q("AT+COPS?", "+COPS")  # 0,0,"Viettel",7
                if v and v.count('"') == 2:
                    self.op = v[v.find('"') + 1:v.rfind('"')]
                return None
            if st == 3:
                return "registration denied (+CEREG stat 3)"
            if st != last:
                self._log("cell: registering, +CEREG stat %d" % st)
                last = st
            await asyncio.sleep_ms(c["reg_poll_ms"])
        return "not registered in %d ms (+CEREG stat %s): no coverage?" % (c["reg_timeout_ms"], last)

    async def _signal(self):
        v = await self.at.q("AT+CSQ", "+CSQ")  # <rssi 0..31, 99>,<ber>
        if v is None:
            return False
        n = int(v.split(",")[0])
        self.rssi = None if n == 99 else -113 + 2 * n
        return True

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
                    self.sent_b += len(e[2])
                    if q and q[0] is e:
                        q.pop(0)
                    continue
                if self._lost >= 0:
                    return self._lost
                self._log("cell: publish %s" % ("refused" if ok is False else "not answered"))
                return 0 if ok is False or await self._sync(3000) else 2
            if time.ticks_diff(time.ticks_ms(), t) > _CHECK_MS:
                t = time.ticks_ms()
                if not await self._signal() and not await self._sync(3000):
                    return 2
                if await m.alive() is False:
                    return 0
            at.poll()
            await asyncio.sleep_ms(_STEP_MS)
        return -1


# The name app.py imports, as from mqtt: the modem's own MQTT stack (Cellular), or with
# cell.mode "ppp" Sen's MQTT client over a PPP link through the modem (ppp.py).
def MQTTClient(client_id, host, port, keepalive, will_topic, will_msg, log):
    import cellcfg  # config.json's "cell", checked by a module dropped after
    c = cellcfg.settings()
    del sys.modules["cellcfg"]
    a = (client_id, host, port, keepalive, will_topic, will_msg, log)
    if c.get("mode") == "ppp":
        import ppp
        return ppp.Client(c, *a)
    return Cellular(*a, None, c)
