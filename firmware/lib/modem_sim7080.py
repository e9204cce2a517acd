# Sen firmware: the SIMCom SIM7080G family (LTE-M / NB-IoT) through its own MQTT stack:
# AT+CNACT (PDP), AT+SMCONF / AT+SMCONN / AT+SMSUB / AT+SMPUB (with its "> " prompt) and the
# +SMSUB: / +SMSTATE: / +APP PDP: URCs. The syntax: firmware/CELLULAR.md (sources
# and what is not verified). A modem family is one file with this interface (cellular.py
# uses nothing else):
#   URCS                     the prefixes of its unsolicited lines
#   pdp(apn, user, pw)       PDP context up -> True/False
#   pdp_off()                PDP context down
#   connect(cid, host, port, keepalive, user, pw, will_topic, will_msg) -> True/False
#   sub(topic)               QoS1 subscription -> True/False
#   pub(topic, msg, retain)  QoS1 publish -> True, False (refused) or None (no answer)
#   alive()                  the session as the modem sees it -> True/False/None
#   disc()                   MQTT session down
#   urc(line)                -> None, (topic, msg bytes) for a message, or the rung the link
#                               fell to: 0 the MQTT session, 1 the PDP context, 2 the modem
#                               itself (it restarted and lost its state)
import time

import asyncio
from at import OK
from micropython import const

_CONN_MS = const(60000)  # AT+SMCONN: TCP + MQTT CONNECT over a slow cell
_PDP_MS = const(30000)
_PUB_MS = const(20000)
_PUB_MAX = const(1024)  # the largest AT+SMPUB (unverified: see firmware/CELLULAR.md)

URCS = ("+SMSUB:", "+SMSTATE:", "+APP PDP:", "RDY", "NORMAL POWER DOWN")


class Modem:
    name = "sim7080"

    def __init__(self, at, log):
        self.at = at
        self._log = log
        self._pdp = False

    async def pdp(self, apn, user, pw):
        at = self.at
        await at.cmd('AT+CGDCONT=1,"IP","%s"' % apn)
        if await at.cmd('AT+CNCFG=0,1,"%s"' % apn + (',"%s","%s"' % (user, pw) if user else "")) != OK:
            return False
        v = await at.q("AT+CNACT?", "+CNACT")
        if v and v.startswith("0,1"):
            return True  # already active (a reconnect after an MQTT drop)
        self._pdp = False
        r = await at.cmd("AT+CNACT=0,1", _PDP_MS)
        if r != OK:
            self._log("cell: AT+CNACT=0,1 %s" % (r or "no answer"))
            return False
        # OK comes first, "+APP PDP: 0,ACTIVE" later: asked until active, for _PDP_MS
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < _PDP_MS:
            v = await at.q("AT+CNACT?", "+CNACT")  # 0,1,"10.1.2.3"
            if v is None or v.startswith("0,1"):
                return bool(v)
            await asyncio.sleep_ms(500)
        return False

    async def pdp_off(self):
        await self.at.cmd("AT+CNACT=0,0", _PDP_MS)

    async def connect(self, cid, host, port, keepalive, user, pw, will_topic, will_msg):
        at = self.at
        await at.cmd("AT+SMDISC", 5000)  # a session the modem kept from before: ERROR if none
        for k, v in (("URL", '"%s",%d' % (host, port)), ("KEEPTIME", keepalive),
                     ("CLEANSS", 1), ("CLIENTID", '"%s"' % cid), ("USERNAME", '"%s"' % (user or "")),
                     ("PASSWORD", '"%s"' % (pw or ""))):
            # no last will: its message is JSON, and a quote cannot be written inside an AT
            # string parameter (the gateway sees the board's silence instead)
            if await at.cmd('AT+SMCONF="%s",%s' % (k, v)) != OK:
                self._log("cell: AT+SMCONF %s refused" % k)
                return False
        r = await at.cmd("AT+SMCONN", _CONN_MS)
        if r != OK:
            self._log("cell: AT+SMCONN %s" % (r or "no answer"))
        return r == OK

    async def sub(self, topic):
        return await self.at.cmd('AT+SMSUB="%s",1' % topic, 15000) == OK

    async def pub(self, topic, msg, retain):
        if len(msg) > _PUB_MAX:
            self._log("cell: message of %d B over the modem's %d B" % (len(msg), _PUB_MAX))
        r = await self.at.cmd('AT+SMPUB="%s",%d,1,%d' % (topic, len(msg), 1 if retain else 0),
                              _PUB_MS, msg)
        return None if not r else r == OK

    # The session as the modem sees it: True, False, or None (no answer)
    async def alive(self):
        v = await self.at.q("AT+SMSTATE?", "+SMSTATE")
        return None if v is None else v != "0"

    async def disc(self):
        await self.at.cmd("AT+SMDISC", 5000)

    def urc(self, line):
        if line.startswith("+SMSUB:"):
            # +SMSUB: "topic","message": the message is everything up to the last quote
            # (a JSON message has quotes of its own)
            i = line.find('"')
            j = line.find('"', i + 1)
            k = line.find('"', j + 1)
            if i < 0 or j < 0 or k < 0 or not line.endswith('"'):
                return None
            return line[i + 1:j], line[k + 1:-1].encode()
        if line.startswith("+SMSTATE:"):
            return 0 if line[9:].strip() == "0" else None
        if line.startswith("+APP PDP:"):
            return 1 if "DEACTIVE" in line else None
        if line == "RDY" or line == "NORMAL POWER DOWN":
            return 2  # the modem started again (or is going down): its state is gone
        return None
