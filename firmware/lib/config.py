# Sen firmware: load config.json from the flash dir and check it once, at boot.
# An error names the file and the key, on one line (see firmware/README.md).
import json

from micropython import const

_NAME_MAX = const(32)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_KNOWN = ("site", "device_id", "board", "broker", "interval_ms", "batch_max",
          "max_readings", "sim", "wifi", "pins", "sensors", "mode", "sleep_ms", "ack_wait_ms",
          "outbox", "transport", "ack", "ack_timeout_ms", "safe_after", "wdt_ms")
_TYPES = ("bme280", "sht31", "dht20", "dht22", "vbat", "chip_temp")
_I2C_TYPES = ("bme280", "sht31", "dht20")
_PINS = ("i2c", "onewire", "adc_vbat", "led", "dht22")


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

    def one(self, d, key, choices, label=None):
        v = d.get(key, choices[0])
        if v not in choices:
            self.fail(label or key, "must be one of %s (got %r)" % ("/".join(choices), v))
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
    b_user = b.get("user")
    c["user"] = ck.str_(b, "user", "broker.user", None) if b_user is not None else None
    c["bpass"] = b.get("password", "")
    if not isinstance(c["bpass"], str):
        ck.fail("broker.password", "must be a string")
    c["tls"] = b.get("tls", False)
    if not isinstance(c["tls"], bool):
        ck.fail("broker.tls", "must be true or false")
    # CA certificate (PEM) on flash that the broker's certificate must chain to; without it
    # TLS encrypts but does not verify the broker.
    c["ca"] = ck.str_(b, "ca", "broker.ca", None) if b.get("ca") is not None else None
    if c["ca"] is not None and not c["tls"]:
        ck.fail("broker.ca", "needs broker.tls true")
    c["mode"] = ck.one(raw, "mode", ("always_on", "deep_sleep"))
    c["sleep_ms"] = ck.int_(raw, "sleep_ms", "sleep_ms", 1000, 86400000, 60000)
    c["ack_wait_ms"] = ck.int_(raw, "ack_wait_ms", "ack_wait_ms", 0, 600000, 5000)
    c["transport"] = ck.one(raw, "transport", ("mqtt", "serial"))
    c["ack"] = ck.one(raw, "ack", ("auto", "e2e", "puback"))
    c["ack_timeout_ms"] = ck.int_(raw, "ack_timeout_ms", "ack_timeout_ms", 500, 3600000, 15000)
    c["safe_after"] = ck.int_(raw, "safe_after", "safe_after", 1, 100, 5)
    c["wdt_ms"] = ck.int_(raw, "wdt_ms", "wdt_ms", 0, 3600000, 30000)
    o = ck.section(raw, "outbox", False)
    c["outbox_ram"] = ck.one(o, "store", ("flash", "ram"), "outbox.store") == "ram"
    c["outbox_max"] = ck.int_(o, "max", "outbox.max", 1, 100000, 2000)
    c["pins"] = _pins(ck, ck.section(raw, "pins", False))
    c["sensors"] = _sensors(ck, raw.get("sensors"), c["interval_ms"])
    w = ck.section(raw, "wifi", False)
    c["ssid"] = ck.str_(w, "ssid", "wifi.ssid", None) if w else None
    c["password"] = w.get("password", "") if w else ""
    if not isinstance(c["password"], str):
        ck.fail("wifi.password", "must be a string")
    return c


def _pin(ck, v, label):
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 48):
        ck.fail(label, "must be a GPIO number 0..48 or null (got %r)" % (v,))
    return v


def _pins(ck, p):
    for k in p:
        if k not in _PINS:
            ck.fail("pins." + k, "is not a known pin key (%s)" % ", ".join(_PINS))
    i = p.get("i2c")
    if i is not None:
        if not isinstance(i, dict):
            ck.fail("pins.i2c", "must be an object or null")
        bus = i.get("bus", 0)
        if bus not in (0, 1, "soft"):
            ck.fail("pins.i2c.bus", "must be 0, 1 or \"soft\" (got %r)" % (bus,))
        _pin(ck, i.get("sda"), "pins.i2c.sda")
        _pin(ck, i.get("scl"), "pins.i2c.scl")
        ck.int_(i, "freq", "pins.i2c.freq", 1000, 1000000, 100000)
    a = p.get("adc_vbat")
    if a is not None:
        if not isinstance(a, dict):
            ck.fail("pins.adc_vbat", "must be an object or null")
        _pin(ck, a.get("pin"), "pins.adc_vbat.pin")
        d = a.get("divider", 1.0)
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.1 <= d <= 100:
            ck.fail("pins.adc_vbat.divider", "must be a number 0.1..100")
    for k in ("onewire", "led", "dht22"):
        _pin(ck, p.get(k), "pins." + k)
    return p


# None when absent (the HAL picks the board's default set)
def _sensors(ck, lst, every):
    if lst is None:
        return None
    if not isinstance(lst, list):
        ck.fail("sensors", "must be a list")
    out = []
    for n, s in enumerate(lst):
        lab = "sensors[%d]" % n
        if not isinstance(s, dict) or s.get("type") not in _TYPES:
            ck.fail(lab + ".type", "must be one of %s" % "/".join(_TYPES))
        e = {"type": s["type"], "interval_ms": ck.int_(s, "interval_ms", lab + ".interval_ms",
                                                      10, 86400000, every)}
        if s["type"] in _I2C_TYPES:
            e["addr"] = ck.int_(s, "addr", lab + ".addr", 8, 119, None)
        f = s.get("filter")
        if f is not None:
            if not isinstance(f, dict):
                ck.fail(lab + ".filter", "must be an object")
            if "median" in f:
                ck.int_(f, "median", lab + ".filter.median", 1, 15, None)
            elif "delta" in f:
                d = f["delta"]
                if isinstance(d, bool) or not isinstance(d, (int, float)) or d < 0:
                    ck.fail(lab + ".filter.delta", "must be a number >= 0")
                ck.int_(f, "heartbeat_ms", lab + ".filter.heartbeat_ms", 10, 86400000, 600000)
            else:
                ck.fail(lab + ".filter", "must hold median or delta")
        e["filter"] = f
        out.append(e)
    return out
