# Sen firmware: the SIMCom A76xx family (A7670, A7680: LTE Cat-1) through its own MQTT
# stack: AT+CMQTTSTART / ACCQ / CONNECT / SUB / TOPIC / PAYLOAD / PUB. Topics, payloads and
# the will go in data mode after a "> " prompt, so a JSON will works here (not on the
# SIM7080G). Results come as URCs after the OK (+CMQTTCONNECT: 0,0, +CMQTTPUB: 0,0); a
# message arrives as +CMQTTRXSTART, +CMQTTRXTOPIC and its raw topic line, +CMQTTRXPAYLOAD
# and its raw payload line, +CMQTTRXEND. The interface: modem_sim7080.py's head comment;
# the syntax and what is not verified: firmware/CELLULAR.md.
import time

import asyncio
from at import OK
from micropython import const

_WAIT_MS = const(30000)  # a +CMQTT... result URC after its OK

URCS = ("+CMQTTRX", "+CMQTTCONNLOST:", "+CMQTTCONNECT:", "+CMQTTPUB:", "+CMQTTSUB:",
        "+CMQTTSTART:", "+CMQTTNONET", "*ATREADY:", "RDY", "+CGEV:")


class Modem:
    name = "a76xx"

    def __init__(self, at, log):
        self.at = at
        self._log = log
        self._res = {}  # type: dict  # result URC name -> its code
        self._t = self._p = None  # a message's topic and payload as they arrive

    # The code of result URC `name` ("+CMQTTPUB"), from the response or a URC, within ms
    async def _result(self, name, ms=_WAIT_MS):
        at = self.at
        for line in at.resp:
            if line.startswith(name + ":"):
                return self._code(line)
        t = time.ticks_ms()
        while name not in self._res:
            if time.ticks_diff(time.ticks_ms(), t) > ms:
                return None
            if not at.pump():
                await asyncio.sleep_ms(10)
        return self._res.pop(name)

    def _code(self, line):
        f = line[line.find(":") + 1:].split(",")
        try:
            return int(f[1] if len(f) > 1 else f[0])
        except ValueError:
            return None

    async def _data(self, c, data, ms=5000):
        return await self.at.cmd(c % len(data), ms, data) == OK

    async def pdp(self, apn, user, pw):
        at = self.at
        await at.cmd('AT+CGDCONT=1,"IP","%s"' % apn)
        if user:
            await at.cmd('AT+CGAUTH=1,1,"%s","%s"' % (pw, user))
        r = await at.cmd("AT+CGACT=1,1", 30000)
        return r == OK

    async def pdp_off(self):
        await self.at.cmd("AT+CGACT=0,1", 30000)

    async def connect(self, cid, host, port, keepalive, user, pw, will_topic, will_msg):
        at = self.at
        await at.cmd("AT+CMQTTDISC=0,60", 10000)  # what the modem kept from before
        await at.cmd("AT+CMQTTREL=0")
        await at.cmd("AT+CMQTTSTOP", 10000)
        self._res.clear()
        if await at.cmd("AT+CMQTTSTART", 10000) != OK or await self._result("+CMQTTSTART") != 0:
            return False
        if await at.cmd('AT+CMQTTACCQ=0,"%s",0' % cid) != OK:
            return False
        if not await self._data("AT+CMQTTWILLTOPIC=0,%d", will_topic.encode()) or \
                not await self._data("AT+CMQTTWILLMSG=0,%d,1", will_msg):
            return False
        c = 'AT+CMQTTCONNECT=0,"tcp://%s:%d",%d,1' % (host, port, keepalive)
        if user:
            c += ',"%s","%s"' % (user, pw or "")
        if await at.cmd(c, _WAIT_MS) != OK:
            return False
        r = await self._result("+CMQTTCONNECT")
        if r != 0:
            self._log("cell: +CMQTTCONNECT %s" % r)
        return r == 0

    async def sub(self, topic):
        if not await self._data("AT+CMQTTSUB=0,%d,1", topic.encode()):
            return False
        return await self._result("+CMQTTSUB") == 0

    async def pub(self, topic, msg, retain):
        if not await self._data("AT+CMQTTTOPIC=0,%d", topic.encode()) or \
                not await self._data("AT+CMQTTPAYLOAD=0,%d", msg):
            return None if not self.at.fin else False
        r = await self.at.cmd("AT+CMQTTPUB=0,1,60,%d" % (1 if retain else 0), 20000)
        if r != OK:
            return None if not r else False
        r = await self._result("+CMQTTPUB", 60000)
        return None if r is None else r == 0

    async def alive(self):
        v = await self.at.q("AT+CMQTTCONNECT?", "+CMQTTCONNECT")  # 0,"tcp://...",... or 0
        return None if v is None else '"' in v

    async def disc(self):
        await self.at.cmd("AT+CMQTTDISC=0,60", 10000)

    def urc(self, line):
        at = self.at
        if line.startswith("+CMQTTRXTOPIC:"):
            at.raw = 1  # the topic follows as a line of its own
            self._t = ""
            return None
        if line.startswith("+CMQTTRXPAYLOAD:"):
            at.raw = 1
            self._p = ""
            return None
        if line.startswith("+CMQTTRXEND:"):
            r = (self._t, (self._p or "").encode()) if self._t else None
            self._t = self._p = None
            return r
        if line.startswith("+CMQTTRX"):  # +CMQTTRXSTART
            return None
        if line.startswith("+CMQTTCONNLOST:") or line.startswith("+CMQTTNONET"):
            return 0
        if line.startswith("+CGEV:"):
            return 1 if "DEACT" in line or "DETACH" in line else None
        if line.startswith("*ATREADY:") or line == "RDY":
            return 2
        if line.startswith("+CMQTT"):  # +CMQTTCONNECT: 0,0, +CMQTTPUB: 0,0, ...
            self._res[line[:line.find(":")]] = self._code(line)
            return None
        # a raw line after +CMQTTRXTOPIC / +CMQTTRXPAYLOAD
        if self._p == "":
            self._p = line
        elif self._t == "":
            self._t = line
        return None
