# Sen firmware: the cellular climb's step to a registered modem (cellup.py sends a try here
# from rung pdp up; cellular.py's run() loads it and drops it before the next step): the modem
# on and answering, echo off, the SIM, power saving (PSM/eDRX), airplane mode for rung cfun,
# the PDP context down for rung pdp, then registration (+CEREG, its own timeout), the signal
# and the operator. Every command has a deadline. ppp.py dials with power(), start() and
# register().
import time

import asyncio
from micropython import const

_PWRKEY_MS = const(1200)


# The step (a: (rung r, wait): cellup.py's go()): rung r's way to a registered modem -> the
# next step: the family's way up (cellup_<family>.py), or back to the ladder with why not
async def go(cl, a):
    r, at = a[0], cl.at
    why = None
    if r == 3 and not await power(cl, not cl.connects):
        why = "no answer from the modem after PWRKEY"
    elif r >= 2:
        why = await start(cl)
    if not why:
        if r >= 2:
            # PSM (AT+CPSMS) and eDRX (AT+CEDRXS) from cell.psm / cell.edrx, or both off
            c = cl.c
            p = c.get("psm")
            if p:  # {"tau": "00100001", "active": "00000101"}: 3GPP TS 24.008 timer bytes
                await at.cmd('AT+CPSMS=1,,,"%s","%s"' % (p["tau"], p["active"]))
            else:
                await at.cmd("AT+CPSMS=0")
            e = c.get("edrx")
            if e:  # {"act": 4 (LTE-M) or 5 (NB-IoT), "value": "0101"}
                await at.cmd('AT+CEDRXS=1,%d,"%s"' % (e["act"], e["value"]))
            if r == 2:
                await at.cmd("AT+CFUN=0", 10000)
                await at.cmd("AT+CFUN=1", 10000)
        if r == 1:
            await at.cmd(cl.m.PDP_OFF, 30000)
        cl._lost = -1  # the URCs of our own CFUN=0 or PDP down are no news
        why = await register(cl)
    # never plain text when TLS was asked for (checked here: without a session, every climb
    # starts at rung power, so every try comes this way)
    if not why and cl.tls:
        why = "broker.tls: not supported over the modem's MQTT stack yet"
    return ("cellup", a + (why,)) if why else ("cellup_" + cl.m.name, a)


# A modem just on (or back from a restart): echo off, numeric errors, registration URCs with
# the cell id, the SIM -> None, or why not
async def start(cl):
    at = cl.at
    for x in ("ATE0", "AT+CMEE=1", "AT+CEREG=2"):
        await at.cmd(x)
    cl._lost = -1  # the RDY of its start is no news
    s = await at.q("AT+CPIN?", "+CPIN")
    if s != "READY":
        return "SIM not ready (%s)" % (s or at.fin or "no answer")
    return None


# On at first boot if it answers already; else PWRKEY, and once more if the modem does not
# answer (it was on, and the first pulse switched it off).
async def power(cl, first):
    if await cl._sync(1500):
        if first:
            return True
        await cl.at.cmd("AT+CPOWD=1", 3000)
        await asyncio.sleep_ms(2000)
    for _ in range(2):
        cl.io.pulse(_PWRKEY_MS)
        if await cl._sync(cl.c["boot_ms"]):
            return True
    return False


# AT+CEREG? every reg_poll_ms until registered (home or roaming), for reg_timeout_ms; then
# the signal and the operator -> None, or why not
async def register(cl):
    at, c = cl.at, cl.c
    t = time.ticks_ms()
    last = None
    while time.ticks_diff(time.ticks_ms(), t) < c["reg_timeout_ms"]:
        v = await at.q("AT+CEREG?", "+CEREG")  # <n>,<stat>[,<tac>,<ci>,<act>]
        f = v.split(",") if v else []
        if len(f) in (1, 4):  # a URC (<stat>[,<tac>,<ci>,<act>]) came first
            f.insert(0, "2")
        st = int(f[1]) if len(f) > 1 and f[1].isdigit() else -1
        cl.reg = st
        if st == 1 or st == 5:
            if len(f) > 3:
                cl.ci = f[3].strip('"')
            v = await at.q("AT+CSQ", "+CSQ")  # the signal: <rssi 0..31, 99>,<ber>
            if v is not None:
                v = int(v.split(",")[0])
                cl.rssi = None if v == 99 else -113 + 2 * v
            v = await at.q("AT+COPS?", "+COPS")  # 0,0,"Viettel",7
            if v and v.count('"') == 2:
                cl.op = v[v.find('"') + 1:v.rfind('"')]
            return None
        if st == 3:
            return "registration denied (+CEREG stat 3)"
        if st == 0 and last == 0:  # not searching, twice: a SIM pulled out says so in start()
            why = await start(cl)
            if why:
                return why
        if st != last:
            cl._log("cell: registering, +CEREG stat %d" % st)
            last = st
        await asyncio.sleep_ms(c["reg_poll_ms"])
    return "not registered in %d ms (+CEREG stat %s): no coverage?" % (c["reg_timeout_ms"], last)
