# Sen firmware: the cellular transport's climb to a session, loaded by cellular.py's run()
# for each climb and dropped once the session is up (only the steady state stays in the
# heap). Its two steps are modules of their own, each loaded for its step and dropped
# before the next, so the heap never holds both: cellnet.py (power-on, SIM, PSM/eDRX,
# airplane mode, registration) and the family's cellup_<family>.py (PDP, MQTT connect,
# subscriptions).
# Recovery climbs a ladder, one rung per failure (back to the bottom after a success):
# 0 reconnect MQTT, 1 re-activate PDP, 2 airplane mode (AT+CFUN=0/1), 3 power-cycle the
# modem; a modem that does not answer AT goes straight to 3. Each step is logged and
# counted (diag cell_rungs); the wait between tries grows from cell.backoff_ms to
# cell.backoff_max_ms, with jitter.
import gc
import random
import sys

import asyncio
from cellular import RUNGS

_DEAF = "the modem does not answer AT"


# From rung r (3: a cold start, or the rung the link fell to) up to an MQTT session
# -> True (up), False (disconnect() came first)
async def climb(cl, r):
    c, log = cl.c, cl._log
    if cl.connects:
        log("cell: link lost, rung %s" % RUNGS[r])
    d = c["backoff_ms"]
    while not cl._stop:
        cl.rungs[r] += 1
        log("cell: up from rung %s (%s times)" % (RUNGS[r], cl.rungs[r]))
        why = await _up(cl, r)
        if cl._stop:
            break
        if why is None:
            log("cell: mqtt up (%s:%d, rssi %s dBm, op %s)" % (cl.host, cl.port, cl.rssi, cl.op))
            return True
        r = 3 if why is _DEAF else min(r + 1, 3)
        w = d // 2 + random.getrandbits(16) % (d // 2 + 1)
        log("cell: %s; next rung %s in %d ms" % (why, RUNGS[r], w))
        await asyncio.sleep_ms(w)
        d = min(d * 2, c["backoff_max_ms"])
    return False


# Up from rung r -> None, or why not
async def _up(cl, r):
    cl._lost = -1
    cl.at.abort = False
    if r < 3 and not await cl._sync(5000):
        return _DEAF
    if r >= 1:
        gc.collect()  # a module loads in one piece per function: the most room first
        net = __import__("cellnet")
        try:
            why = await net.up(cl, r)
        finally:
            del net
            del sys.modules["cellnet"]
        if why:
            return why
    if cl.tls:  # never plain text when TLS was asked for
        return "broker.tls: not supported over the modem's MQTT stack yet"
    m, c = cl.m, cl.c
    n = "cellup_" + m.name
    gc.collect()
    fam = __import__(n)
    try:
        if r >= 1 and not await fam.pdp(m, c["apn"], c.get("user", ""), c.get("password", "")):
            return "no PDP context (APN %s)" % c["apn"]
        w = cl._w
        if not await fam.connect(m, w[0], cl.host, cl.port, cl.keepalive, cl.user, cl.password, w[1], w[2]):
            return "MQTT connect to %s:%d failed" % (cl.host, cl.port)
        for t in cl.subs:
            if not await fam.sub(m, t):
                return "subscribe %s failed" % t
    finally:
        del fam
        del sys.modules[n]
    if cl._lost >= 0:
        return "lost while connecting"
    return None
