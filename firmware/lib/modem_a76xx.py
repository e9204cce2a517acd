# Sen firmware: the SIMCom A76xx family (A7670, A7680: LTE Cat-1) through its own MQTT
# stack: AT+CMQTTSTART / ACCQ / CONNECT / SUB / TOPIC / PAYLOAD / PUB. Topics, payloads and
# the will go in data mode after a "> " prompt, so a JSON will works here (not on the
# SIM7080G). Results come as URCs after the OK (+CMQTTCONNECT: 0,0, +CMQTTPUB: 0,0); a
# message arrives as +CMQTTRXSTART, +CMQTTRXTOPIC and its raw topic line, +CMQTTRXPAYLOAD
# and its raw payload line, +CMQTTRXEND. The interface: modem_sim7080.py's head comment;
# this half stays in the heap, the way up (pdp, connect, sub) is cellup_a76xx.py;
# the syntax and what is not verified: firmware/CELLULAR.md.
import time

import asyncio
from micropython import const

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass

_WAIT_MS = const(30000)  # a +CMQTT... result URC after its OK

URCS = ("+CMQTTRX", "+CMQTTCONNLOST:", "+CMQTTCONNECT:", "+CMQTTPUB:", "+CMQTTSUB:",
        "+CMQTTSTART:", "+CMQTTNONET", "*ATREADY:", "RDY", "+CGEV:", "+CEREG:")


name = "a76xx"
PDP_OFF = "AT+CGACT=0,1"  # the PDP context down (rung pdp)
at: Any = None  # the AT engine and the log (set by cellcfg.py)
_log: Any = None
_res = {}  # type: dict  # result URC name -> its code
_t = _p = None  # a message's topic and payload as they arrive


# The code of result URC `name` ("+CMQTTPUB"), from the response or a URC, within ms
async def _result(name, ms=_WAIT_MS):
    for line in at.resp:
        if line.startswith(name + ":"):
            return _code(line)
    t = time.ticks_ms()
    while name not in _res:
        if time.ticks_diff(time.ticks_ms(), t) > ms:
            return None
        if not at.pump():
            await asyncio.sleep_ms(10)
    return _res.pop(name)


def _code(line):
    f = line[line.find(":") + 1:].split(",")
    try:
        return int(f[1] if len(f) > 1 else f[0])
    except ValueError:
        return None


async def _data(c, data, ms=5000):
    return await at.cmd(c % len(data), ms, data) == "OK"


async def pub(topic, msg, retain):
    if not await _data("AT+CMQTTTOPIC=0,%d", topic.encode()) or \
            not await _data("AT+CMQTTPAYLOAD=0,%d", msg):
        return None if not at.fin else False
    r = await at.cmd("AT+CMQTTPUB=0,1,60,%d" % (1 if retain else 0), 20000)
    if r != "OK":
        return None if not r else False
    r = await _result("+CMQTTPUB", 60000)
    return None if r is None else r == 0


async def alive():
    v = await at.q("AT+CMQTTCONNECT?", "+CMQTTCONNECT")  # 0,"tcp://...",... or 0
    return None if v is None else '"' in v


async def disc():
    await at.cmd("AT+CMQTTDISC=0,60", 10000)


def urc(line):
    global _t, _p
    if line.startswith("+CMQTTRXTOPIC:"):
        at.raw = 1  # the topic follows as a line of its own
        _t = ""
        return None
    if line.startswith("+CMQTTRXPAYLOAD:"):
        at.raw = 1
        _p = ""
        return None
    if line.startswith("+CMQTTRXEND:"):
        r = (_t, (_p or "").encode()) if _t else None
        _t = _p = None
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
        _res[line[:line.find(":")]] = _code(line)
        return None
    # a raw line after +CMQTTRXTOPIC / +CMQTTRXPAYLOAD
    if _p == "":
        _p = line
    elif _t == "":
        _t = line
    return None
