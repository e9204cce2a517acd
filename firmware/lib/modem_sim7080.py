# Sen firmware: the SIMCom SIM7080G family (LTE-M / NB-IoT) through its own MQTT stack:
# AT+CNACT (PDP), AT+SMCONF / AT+SMCONN / AT+SMSUB / AT+SMPUB (with its "> " prompt) and the
# +SMSUB: / +SMSTATE: / +APP PDP: URCs. The syntax: firmware/CELLULAR.md (sources
# and what is not verified). A modem family is two files, one interface (cellular.py and
# cellup.py use nothing else). This one stays in the heap while the board runs; it is the
# module itself (one modem per board: no class, no instance to pay for):
#   at, _log                 its AT engine and log (cellcfg.py sets them)
#   URCS                     the prefixes of the unsolicited lines (with "+CEREG:",
#                            which cellular.py takes itself)
#   name                     the family ("sim7080"): its way up is cellup_<name>.py
#   PDP_OFF                  the command that takes the PDP context down
#   pub(topic, msg, retain)  QoS1 publish -> True, False (refused) or None (no answer)
#   alive()                  the session as the modem sees it -> True/False/None
#   disc()                   MQTT session down
#   urc(line)                -> None, (topic, msg bytes) for a message, or the rung the link
#                               fell to: 0 the MQTT session, 1 the PDP context, 2 the modem
#                               itself (it restarted and lost its state)
# cellup_sim7080.py, loaded only on the way up: go() (PDP, MQTT connect, subscriptions).
from micropython import const

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass

_PUB_MS = const(20000)
_PUB_MAX = const(1024)  # the largest AT+SMPUB (unverified: see firmware/CELLULAR.md)

URCS = ("+SMSUB:", "+SMSTATE:", "+APP PDP:", "RDY", "NORMAL POWER DOWN", "+CEREG:")


name = "sim7080"
PDP_OFF = "AT+CNACT=0,0"  # the PDP context down (rung pdp)
at: Any = None  # the AT engine and the log (set by cellcfg.py)
_log: Any = None


async def pub(topic, msg, retain):
    if len(msg) > _PUB_MAX:
        _log("cell: message of %d B over the modem's %d B" % (len(msg), _PUB_MAX))
    r = await at.cmd('AT+SMPUB="%s",%d,1,%d' % (topic, len(msg), 1 if retain else 0), _PUB_MS, msg)
    return None if not r else r == "OK"


# The session as the modem sees it: True, False, or None (no answer)
async def alive():
    v = await at.q("AT+SMSTATE?", "+SMSTATE")
    return None if v is None else v != "0"


async def disc():
    await at.cmd("AT+SMDISC", 5000)


def urc(line):
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
