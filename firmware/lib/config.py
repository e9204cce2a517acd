# Sen firmware: load config.json from the flash dir and check it once, at boot.
# An error names the file and the key, on one line (see firmware/README.md).
import json

from micropython import const

_NAME_MAX = const(32)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_KNOWN = ("site", "device_id", "board", "broker", "interval_ms", "batch_max",
          "max_readings", "sim", "wifi")


class ConfigError(Exception):
    pass


def name_ok(s):
    if not isinstance(s, str) or not 1 <= len(s) <= _NAME_MAX:
        return False
    for c in s:
        if c not in _NAME_CHARS:
            return False
    return True


class _Checker:
    def __init__(self, path):
        self.path = path

    def fail(self, key, why):
        raise ConfigError("%s: key '%s' %s" % (self.path, key, why))

    def section(self, d, key, required):
        v = d.get(key)
        if v is None:
            if required:
                self.fail(key, "is missing")
            return {}
        if not isinstance(v, dict):
            self.fail(key, "must be an object")
        return v

    def int_(self, d, key, label, lo, hi, default):
        v = d.get(key, default)
        # bool is an int subclass in Python: refuse true/false explicitly
        if v is None or isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(label, "must be an integer in %d..%d (got %r)" % (lo, hi, v))
        return v

    def str_(self, d, key, label, default):
        v = d.get(key, default)
        if not isinstance(v, str) or not v:
            self.fail(label, "must be a non-empty string (got %r)" % (v,))
        return v

    def name(self, d, key, default):
        v = d.get(key, default)
        if not name_ok(v):
            self.fail(key, "must match [a-z0-9_-]{1,32} (got %r)" % (v,))
        return v


# Returns a flat, checked dict with defaults filled in. device_id is None when absent:
# the HAL then derives one from the hardware.
def load(path="config.json", board_default="sim"):
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError("%s: cannot read the file (missing?)" % path)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % path)
    ck = _Checker(path)
    if not isinstance(raw, dict):
        raise ConfigError("%s: top level must be a JSON object" % path)
    for k in raw:
        if k not in _KNOWN:
            print("config: %s: ignoring unknown key '%s'" % (path, k))
    c = {}
    c["site"] = ck.name(raw, "site", None)
    dev = raw.get("device_id")
    if dev is not None:
        dev = ck.name(raw, "device_id", None)
    c["device_id"] = dev
    c["board"] = ck.name(raw, "board", board_default)
    b = ck.section(raw, "broker", True)
    c["host"] = ck.str_(b, "host", "broker.host", None)
    c["port"] = ck.int_(b, "port", "broker.port", 1, 65535, 1883)
    c["keepalive"] = ck.int_(b, "keepalive", "broker.keepalive", 5, 3600, 30)
    c["interval_ms"] = ck.int_(raw, "interval_ms", "interval_ms", 10, 86400000, 1000)
    c["batch_max"] = ck.int_(raw, "batch_max", "batch_max", 1, 50, 10)
    c["max_readings"] = ck.int_(raw, "max_readings", "max_readings", 0, 1 << 30, 0)
    s = ck.section(raw, "sim", False)
    c["seed"] = ck.int_(s, "seed", "sim.seed", -(1 << 53), 1 << 53, 0)
    w = ck.section(raw, "wifi", False)
    c["ssid"] = ck.str_(w, "ssid", "wifi.ssid", None) if w else None
    c["password"] = w.get("password", "") if w else ""
    if not isinstance(c["password"], str):
        ck.fail("wifi.password", "must be a string")
    return c
