# Sen firmware: the SIM7080G's way up (modem_sim7080.py is the half that stays in the heap), the
# climb's last step (cellup.py says how a climb goes): the PDP context (AT+CNACT) from rung pdp
# up, the MQTT session (AT+SMCONF, AT+SMCONN) and its subscriptions (AT+SMSUB). A family's way
# up is this one interface, go(cl, a) (a: (rung, wait), from cellnet.py or, for rung mqtt,
# cellup.py) -> True (up), False (disconnect() came first) or back to the ladder ("cellup",
# (rung, wait, why not)).
import time

import asyncio
from at import OK
from micropython import const

_CONN_MS = const(60000)  # AT+SMCONN: TCP + MQTT CONNECT over a slow cell
_PDP_MS = const(30000)


async def go(cl, a):
    at, log = cl.at, cl._log
    why = "no PDP context (APN %s)" % cl.c["apn"]
    if a[0] < 1 or await _pdp(cl):
        why = "MQTT connect to %s:%d failed" % (cl.host, cl.port)
        await at.cmd("AT+SMDISC", 5000)  # a session the modem kept from before: ERROR if none
        for k, v in (("URL", '"%s",%d' % (cl.host, cl.port)), ("KEEPTIME", cl.keepalive),
                     ("CLEANSS", 1), ("CLIENTID", '"%s"' % cl._w[0]), ("USERNAME", '"%s"' % (cl.user or "")),
                     ("PASSWORD", '"%s"' % (cl.password or ""))):
            # no last will: its message is JSON, and a quote cannot be written inside an AT
            # string parameter (the gateway sees the board's silence instead)
            if await at.cmd('AT+SMCONF="%s",%s' % (k, v)) != OK:
                log("cell: AT+SMCONF %s refused" % k)
                break
        else:
            r = await at.cmd("AT+SMCONN", _CONN_MS)
            if r != OK:
                log("cell: AT+SMCONN %s" % (r or "no answer"))
            else:
                why = ""
                for t in cl.subs:
                    if await at.cmd('AT+SMSUB="%s",1' % t, 15000) != OK:
                        why = "subscribe %s failed" % t
                        break
                else:
                    if cl._lost >= 0:
                        why = "lost while connecting"
    if cl._stop:
        return False
    if why:
        return "cellup", a + (why,)
    log("cell: mqtt up (%s:%d, rssi %s dBm, op %s)" % (cl.host, cl.port, cl.rssi, cl.op))
    return True


async def _pdp(cl):
    at, c = cl.at, cl.c
    apn = c["apn"]
    await at.cmd('AT+CGDCONT=1,"IP","%s"' % apn)
    u = c.get("user", "")
    if await at.cmd('AT+CNCFG=0,1,"%s"' % apn + (',"%s","%s"' % (u, c.get("password", "")) if u else "")) != OK:
        return False
    v = await at.q("AT+CNACT?", "+CNACT")
    if v and v.startswith("0,1"):
        return True  # already active (a reconnect after an MQTT drop)
    r = await at.cmd("AT+CNACT=0,1", _PDP_MS)
    if r != OK:
        cl._log("cell: AT+CNACT=0,1 %s" % (r or "no answer"))
        return False
    # OK comes first, "+APP PDP: 0,ACTIVE" later: asked until active, for _PDP_MS
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < _PDP_MS:
        v = await at.q("AT+CNACT?", "+CNACT")  # 0,1,"10.1.2.3"
        if v is None or v.startswith("0,1"):
            return bool(v)
        await asyncio.sleep_ms(500)
    return False

