# Sen firmware: the SIM7080G's way up (modem_sim7080.py is the half that stays in the heap),
# loaded with cellup.py for a climb and dropped with it: the PDP context (AT+CNACT) and the
# MQTT session (AT+SMCONF, AT+SMCONN, AT+SMSUB). m: the family's module (modem_sim7080).
#   pdp(m, apn, user, pw)    PDP context up -> True/False
#   connect(m, cid, host, port, keepalive, user, pw, will_topic, will_msg) -> True/False
#   sub(m, topic)            QoS1 subscription -> True/False
import time

import asyncio
from at import OK
from micropython import const

_CONN_MS = const(60000)  # AT+SMCONN: TCP + MQTT CONNECT over a slow cell
_PDP_MS = const(30000)


async def pdp(m, apn, user, pw):
    at = m.at
    await at.cmd('AT+CGDCONT=1,"IP","%s"' % apn)
    if await at.cmd('AT+CNCFG=0,1,"%s"' % apn + (',"%s","%s"' % (user, pw) if user else "")) != OK:
        return False
    v = await at.q("AT+CNACT?", "+CNACT")
    if v and v.startswith("0,1"):
        return True  # already active (a reconnect after an MQTT drop)
    r = await at.cmd("AT+CNACT=0,1", _PDP_MS)
    if r != OK:
        m._log("cell: AT+CNACT=0,1 %s" % (r or "no answer"))
        return False
    # OK comes first, "+APP PDP: 0,ACTIVE" later: asked until active, for _PDP_MS
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < _PDP_MS:
        v = await at.q("AT+CNACT?", "+CNACT")  # 0,1,"10.1.2.3"
        if v is None or v.startswith("0,1"):
            return bool(v)
        await asyncio.sleep_ms(500)
    return False


async def connect(m, cid, host, port, keepalive, user, pw, will_topic, will_msg):
    at = m.at
    await at.cmd("AT+SMDISC", 5000)  # a session the modem kept from before: ERROR if none
    for k, v in (("URL", '"%s",%d' % (host, port)), ("KEEPTIME", keepalive),
                 ("CLEANSS", 1), ("CLIENTID", '"%s"' % cid), ("USERNAME", '"%s"' % (user or "")),
                 ("PASSWORD", '"%s"' % (pw or ""))):
        # no last will: its message is JSON, and a quote cannot be written inside an AT
        # string parameter (the gateway sees the board's silence instead)
        if await at.cmd('AT+SMCONF="%s",%s' % (k, v)) != OK:
            m._log("cell: AT+SMCONF %s refused" % k)
            return False
    r = await at.cmd("AT+SMCONN", _CONN_MS)
    if r != OK:
        m._log("cell: AT+SMCONN %s" % (r or "no answer"))
    return r == OK


async def sub(m, topic):
    return await m.at.cmd('AT+SMSUB="%s",1' % topic, 15000) == OK
