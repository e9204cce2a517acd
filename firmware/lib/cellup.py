# Sen firmware: the cellular transport's recovery ladder, the first step of each try of a climb
# to a session. A climb is steps, each a module that cellular.py's run() loads for it and drops
# before the next loads (the heap never holds two; only the steady state stays): this one (which
# rung, the wait after a failed try), cellnet.py (power-on, SIM, PSM/eDRX, airplane mode,
# registration; from rung pdp up), the family's cellup_<family>.py (PDP, MQTT connect,
# subscriptions). A step's go(cl, a) -> the next step (module name, its a), True (up) or False
# (disconnect() came first).
# The ladder: one rung per failure (back to the bottom after a success): 0 reconnect MQTT,
# 1 re-activate PDP, 2 airplane mode (AT+CFUN=0/1), 3 power-cycle the modem; a modem that does
# not answer AT goes straight to 3. Each step is logged and counted (diag cell_rungs); the wait
# between tries grows from cell.backoff_ms to cell.backoff_max_ms, with jitter.
import random

import asyncio
from cellular import RUNGS


# a: (r, d, why): why (None: a new climb, from rung r: 3 a cold start, or the rung the link
# fell to) the try from rung r failed; d the wait after a failed try
async def go(cl, a):
    r, d, why = a
    c, log = cl.c, cl._log
    if why:
        r = min(r + 1, 3)
    else:
        if cl.connects:
            log("cell: link lost, rung %s" % RUNGS[r])
        d = c["backoff_ms"]
    while not cl._stop:
        if why:
            w = d // 2 + random.getrandbits(16) % (d // 2 + 1)
            log("cell: %s; next rung %s in %d ms" % (why, RUNGS[r], w))
            await asyncio.sleep_ms(w)
            d = min(d * 2, c["backoff_max_ms"])
        cl.rungs[r] += 1
        log("cell: up from rung %s (%s times)" % (RUNGS[r], cl.rungs[r]))
        cl._lost = -1
        cl.at.abort = False
        if r == 3 or await cl._sync(5000):
            return ("cellnet" if r else "cellup_" + cl.m.name), (r, d)
        why = "the modem does not answer AT"
        r = 3
    return False
