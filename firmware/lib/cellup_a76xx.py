# Sen firmware: the A76xx's way up (modem_a76xx.py is the half that stays in the heap), loaded
# with cellup.py for a climb and dropped with it: the PDP context (AT+CGACT) and the MQTT
# session (AT+CMQTTSTART, ACCQ, the will in data mode, CONNECT, SUB). The interface:
# cellup_sim7080.py's head comment.
from at import OK
from micropython import const

_WAIT_MS = const(30000)  # a +CMQTT... result URC after its OK


async def pdp(m, apn, user, pw):
    at = m.at
    await at.cmd('AT+CGDCONT=1,"IP","%s"' % apn)
    if user:
        await at.cmd('AT+CGAUTH=1,1,"%s","%s"' % (pw, user))
    return await at.cmd("AT+CGACT=1,1", 30000) == OK


async def connect(m, cid, host, port, keepalive, user, pw, will_topic, will_msg):
    at = m.at
    await at.cmd("AT+CMQTTDISC=0,60", 10000)  # what the modem kept from before
    await at.cmd("AT+CMQTTREL=0")
    await at.cmd("AT+CMQTTSTOP", 10000)
    m._res.clear()
    if await at.cmd("AT+CMQTTSTART", 10000) != OK or await m._result("+CMQTTSTART") != 0:
        return False
    if await at.cmd('AT+CMQTTACCQ=0,"%s",0' % cid) != OK:
        return False
    if not await m._data("AT+CMQTTWILLTOPIC=0,%d", will_topic.encode()) or \
            not await m._data("AT+CMQTTWILLMSG=0,%d,1", will_msg):
        return False
    c = 'AT+CMQTTCONNECT=0,"tcp://%s:%d",%d,1' % (host, port, keepalive)
    if user:
        c += ',"%s","%s"' % (user, pw or "")
    if await at.cmd(c, _WAIT_MS) != OK:
        return False
    r = await m._result("+CMQTTCONNECT")
    if r != 0:
        m._log("cell: +CMQTTCONNECT %s" % r)
    return r == 0


async def sub(m, topic):
    if not await m._data("AT+CMQTTSUB=0,%d,1", topic.encode()):
        return False
    return await m._result("+CMQTTSUB") == 0
