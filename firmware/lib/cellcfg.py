# Sen firmware: config.json's "cell" for the cellular transport, checked once when it starts
# (cellular.py imports this module and drops it after): APN presets, defaults. An error
# names the file and the key (CellError stops the board with it). firmware/CELLULAR.md.
import json

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
