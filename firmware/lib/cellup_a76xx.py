# Sen firmware: the A76xx's way up (modem_a76xx.py is the half that stays in the heap), the
# climb's last step: the PDP context (AT+CGACT) from rung pdp up, the MQTT session
# (AT+CMQTTSTART, ACCQ, the will in data mode, CONNECT) and its subscriptions (SUB). The
# interface, go(cl, a): cellup_sim7080.py's head comment.
from at import OK
from micropython import const

_WAIT_MS = const(30000)  # a +CMQTT... result URC after its OK


async def go(cl, a):
    m, c, log = cl.m, cl.c, cl._log
    why = None
    if a[0] >= 1 and not await _pdp(cl.at, c):
        why = "no PDP context (APN %s)" % c["apn"]
    elif not await _connect(cl, m):
        why = "MQTT connect to %s:%d failed" % (cl.host, cl.port)
    else:
        for t in cl.subs:
            if not await m._data("AT+CMQTTSUB=0,%d,1", t.encode()) or await m._result("+CMQTTSUB") != 0:
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


async def _pdp(at, c):
    await at.cmd('AT+CGDCONT=1,"IP","%s"' % c["apn"])
    u = c.get("user", "")
    if u:
        await at.cmd('AT+CGAUTH=1,1,"%s","%s"' % (c.get("password", ""), u))
    return await at.cmd("AT+CGACT=1,1", 30000) == OK


async def _connect(cl, m):
    at = cl.at
    await at.cmd("AT+CMQTTDISC=0,60", 10000)  # what the modem kept from before
    await at.cmd("AT+CMQTTREL=0")
    await at.cmd("AT+CMQTTSTOP", 10000)
    m._res.clear()
    if await at.cmd("AT+CMQTTSTART", 10000) != OK or await m._result("+CMQTTSTART") != 0:
        return False
    cid, wt, wm = cl._w
    if await at.cmd('AT+CMQTTACCQ=0,"%s",0' % cid) != OK:
        return False
    if not await m._data("AT+CMQTTWILLTOPIC=0,%d", wt.encode()) or \
            not await m._data("AT+CMQTTWILLMSG=0,%d,1", wm):
        return False
    c = 'AT+CMQTTCONNECT=0,"tcp://%s:%d",%d,1' % (cl.host, cl.port, cl.keepalive)
    if cl.user:
        c += ',"%s","%s"' % (cl.user, cl.password or "")
    if await at.cmd(c, _WAIT_MS) != OK:
        return False
    r = await m._result("+CMQTTCONNECT")
    if r != 0:
        cl._log("cell: +CMQTTCONNECT %s" % r)
    return r == 0
