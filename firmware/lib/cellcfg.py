# Sen firmware: config.json's "cell" for the cellular transport, checked once when it starts,
# and the transport built from it (cellular.py's MQTTClient() imports this module and drops
# it: what only runs once does not stay in the heap): APN presets, defaults. An error names
# the file and the key (CellError stops the board with it). firmware/CELLULAR.md.
import json
import sys

from at import AT

# APN presets: name -> (apn, user, password); sources and what is unverified:
# firmware/CELLULAR.md
APN = {"viettel": ("v-internet", "", ""), "vinaphone": ("m3-world", "mms", "mms"),
       "mobifone": ("m-wap", "mms", "mms")}


class CellError(Exception):
    pass


# config.json's "cell", checked, with its defaults
def settings(path="config.json"):
    with open(path) as f:
        c = json.load(f).get("cell")
    if not isinstance(c, dict):
        raise CellError("%s: key 'cell' must be an object (transport cellular)" % path)
    p = c.get("apn_preset")
    if p is not None:
        if p not in APN:
            raise CellError("%s: key 'cell.apn_preset' must be one of %s (got %r)" % (path, "/".join(APN), p))
        a = APN[p]
        c.setdefault("apn", a[0])
        c.setdefault("user", a[1])
        c.setdefault("password", a[2])
    if not isinstance(c.get("apn"), str) or not c["apn"]:
        raise CellError("%s: key 'cell.apn' is missing (or cell.apn_preset: %s)" % (path, "/".join(APN)))
    if c.get("modem", "sim7080") not in ("sim7080", "a76xx"):
        raise CellError("%s: key 'cell.modem' must be sim7080 or a76xx" % path)
    if c.get("mode", "mqtt") not in ("mqtt", "ppp"):
        raise CellError("%s: key 'cell.mode' must be mqtt (the modem's MQTT) or ppp" % path)
    for k, d in (("reg_timeout_ms", 180000), ("reg_poll_ms", 2000), ("backoff_ms", 2000),
                 ("backoff_max_ms", 60000), ("boot_ms", 15000)):
        v = c.setdefault(k, d)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CellError("%s: key 'cell.%s' must be a positive integer" % (path, k))
    return c


# The port's modem wires, set up here (their modules keep no constructor): modem_io.py (ESP32:
# the UART and the PWRKEY pin from cell) or modem_tcp.py (a socket to the simulated modem)
def _wires(c):
    if sys.platform == "esp32":
        from machine import UART, Pin
        w = __import__("modem_io").Wires()
        w.u = UART(c.get("uart", 1), baudrate=c.get("baud", 115200), tx=c["tx"], rx=c["rx"], timeout=0, rxbuf=2048)
        w._a = a = c.get("pwrkey_active", 1)
        w.p = None if c.get("pwrkey") is None else Pin(c["pwrkey"], Pin.OUT, value=1 - a)
        w.pmu = c.get("pmu")  # the modem's supply on a power manager's rails (modem_io.py)
        return w
    w = __import__("modem_tcp").Wires()
    w._port = c.get("sim_port", 7080)
    w.s = None
    w.pulse(0)
    return w


# The transport for cellular.MQTTClient's arguments: a Cellular (the modem's MQTT stack) or,
# with cell.mode "ppp", a ppp.Client. io: the modem's wires (default: the port's, from cell);
# c: the settings (default: config.json's, checked).
def client(client_id, host, port, keepalive, will_topic, will_msg, log, io=None, c=None):
    from cellular import Cellular
    if c is None:
        c = settings()
    cl = Cellular()
    # every attribute from the start: the instance's dict is sized now, while the heap is in
    # one piece, not grown (a 464-byte block) in the middle of a climb
    cl.host, cl.port, cl.keepalive = host, port, keepalive
    cl._w = (client_id, will_topic, will_msg)
    cl._log = log
    cl.c = c
    if io is None:
        io = _wires(c)
    cl.io = io
    cl.at = at = AT(io)
    cl.m = fam = __import__("modem_" + c.get("modem", "sim7080"))  # the module is the modem
    fam.at, fam._log = at, log  # type: ignore[attr-defined]  # its globals (modem_<family>.py)
    at.urcs = fam.URCS
    at.on_urc = cl._urc
    cl.on_connect = cl.on_message = cl.net_connect = None  # the app sets them
    cl.subs = []
    cl.user = cl.ca = None
    cl.password, cl.tls = "", False
    cl._q = []  # [packet id, topic, msg, retain], in order
    cl.connected = cl._stop = False
    cl.connects = cl._pid = 0
    cl._lost = -1  # the rung a URC says the link fell to
    cl.rungs = [0, 0, 0, 0]
    cl.rssi = cl.reg = cl.op = cl.ci = None
    if c.get("mode") == "ppp":
        return __import__("ppp").Client(cl, client_id, host, port, keepalive, will_topic, will_msg, log)
    return cl
