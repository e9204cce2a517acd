# Sen firmware: load config.json from the flash dir and check it once, at boot.
# An error names the file and the key, on one line (see firmware/README.md).
# main.py drops this module once boot is done; what stays in RAM are the names it interned
# (qstrs are never freed), so it is written with few of them: one checker, few arguments.
import json

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_KNOWN = ("site", "device_id", "board", "broker", "interval_ms", "batch_max",
          "max_readings", "sim", "wifi", "pins", "sensors", "mode", "sleep_ms", "ack_wait_ms",
          "outbox", "transport", "ack", "ack_timeout_ms", "safe_after", "wdt_ms", "cell", "ota")
_TYPES = ("bme280", "sht31", "dht20", "dht22", "vbat", "chip_temp", "ds18b20", "soil", "bh1750", "hcsr04",
          "adc")
_PINS = ("i2c", "onewire", "adc_vbat", "led", "dht22")


class ConfigError(Exception):
    pass


# d[key] (dflt when absent) checked as `kind`, or ConfigError naming pre + key:
#   (lo, hi)  an integer in lo..hi (true/false refused: bool is an int in Python)
#   "num"     a number in lo..hi          "str"   a non-empty string
#   "name"    [a-z0-9_-]{1,32}            "bool"  true or false
#   "obj"     an object ({} when absent)  "pin"   a GPIO number 0..48 or null
#   a list    one of its strings
def _get(d, key, kind, dflt=None, pre=""):
    v = d.get(key, dflt)
    why = None
    if isinstance(kind, list):
        if v not in kind:
            why = "must be one of %s" % "/".join(kind)
    elif isinstance(kind, tuple) or kind == "num":
        num = kind == "num"
        lo, hi = (0.1, 100) if num else kind
        if isinstance(v, bool) or not (isinstance(v, int) or num and isinstance(v, float)) \
                or not lo <= v <= hi:
            why = "must be %s in %s..%s" % ("a number" if num else "an integer", lo, hi)
    elif kind == "str":
        if not isinstance(v, str) or not v:
            why = "must be a non-empty string"
    elif kind == "name":
        if not isinstance(v, str) or not 1 <= len(v) <= 32 or [c for c in v if c not in _NAME_CHARS]:
            why = "must match [a-z0-9_-]{1,32}"
    elif kind == "bool":
        if not isinstance(v, bool):
            why = "must be true or false"
    elif kind == "obj":
        if v is None:
            v = {}
        if not isinstance(v, dict):
            why = "must be an object"
    elif v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 48):
        why = "must be a GPIO number 0..48 or null"  # "pin"
    if why:
        raise ConfigError("%s: key '%s' %s (got %r)" % (_path[0], pre + key, why, v))
    return v


_path = ["config.json"]


# Returns a flat, checked dict with defaults filled in. device_id is None when absent:
# the HAL then derives one from the hardware. Each part is checked by its own function
# below (named after its key: no new names to intern).
def load(path="config.json", board=None):
    _path[0] = path
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError("%s: cannot read the file (missing?)" % path)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % path)
    if not isinstance(raw, dict):
        raise ConfigError("%s: top level must be a JSON object" % path)
    for k in raw:
        if k not in _KNOWN:
            print("config: %s: ignoring unknown key '%s'" % (path, k))
    c = {"site": _get(raw, "site", "name")}
    c["device_id"] = _get(raw, "device_id", "name") if raw.get("device_id") is not None else None
    c["board"] = _get(raw, "board", "name", board)
    broker(raw, c)
    # timing and counts, the modes, the outbox
    for k, lo, hi, dflt in (("interval_ms", 10, 86400000, 1000), ("batch_max", 1, 50, 10),
                            ("max_readings", 0, 1 << 30, 0), ("sleep_ms", 1000, 86400000, 60000),
                            ("ack_wait_ms", 0, 600000, 5000), ("ack_timeout_ms", 500, 3600000, 15000),
                            ("safe_after", 1, 100, 5), ("wdt_ms", 0, 3600000, 30000)):
        c[k] = _get(raw, k, (lo, hi), dflt)
    c["seed"] = _get(_get(raw, "sim", "obj"), "seed", (-(1 << 53), 1 << 53), 0, "sim.")
    c["mode"] = _get(raw, "mode", ["always_on", "deep_sleep"], "always_on")
    c["transport"] = _get(raw, "transport", ["mqtt", "serial", "cellular"], "mqtt")  # cell: cellular.py
    c["ack"] = _get(raw, "ack", ["auto", "e2e", "puback"], "auto")
    o = _get(raw, "outbox", "obj")
    c["outbox_ram"] = _get(o, "store", ["flash", "ram"], "flash", "outbox.") == "ram"
    c["outbox_max"] = _get(o, "max", (1, 100000), 2000, "outbox.")
    # ota: pub, the OTA public key (64 hex digits, sen ota keygen's ota.pub; without it every
    # update is refused); trial_ms, how long a new version has to connect and get its first
    # end-to-end ack (DESIGN.md, OTA)
    o = _get(raw, "ota", "obj")
    v = c["ota_pub"] = o.get("pub")
    if v is not None and (not isinstance(v, str) or len(v) != 64 or [x for x in v.lower() if x not in "0123456789abcdef"]):
        raise ConfigError("%s: key 'ota.pub' must be 64 hex digits (the ota.pub of sen ota keygen)" % path)
    c["trial_ms"] = _get(o, "trial_ms", (1000, 3600000), 120000, "ota.")
    c["pins"] = pins(raw)
    c["sensors"] = sensors(raw.get("sensors"), c["interval_ms"])
    w = _get(raw, "wifi", "obj")
    c["ssid"] = _get(w, "ssid", "str", None, "wifi.") if w else None
    c["password"] = _get(w, "password", "str", 0, "wifi.") if w.get("password", "") != "" else ""
    return c


# broker: host, port, keepalive, user and password, TLS and its CA, into c.
def broker(raw, c):
    if raw.get("broker") is None:
        raise ConfigError("%s: key 'broker' is missing" % _path[0])
    b = _get(raw, "broker", "obj")
    c["host"] = _get(b, "host", "str", None, "broker.")
    c["port"] = _get(b, "port", (1, 65535), 1883, "broker.")
    c["keepalive"] = _get(b, "keepalive", (5, 3600), 30, "broker.")
    c["user"] = _get(b, "user", "str", None, "broker.") if b.get("user") is not None else None
    c["bpass"] = _get(b, "password", "str", 0, "broker.") if b.get("password", "") != "" else ""
    # tls: true verifies the broker's certificate against ca (a CA file on flash), which it
    # then needs; "insecure" encrypts without verifying anything, only when said so
    t = c["tls"] = b.get("tls", False)
    if t is not True and t is not False and t != "insecure":
        raise ConfigError("%s: key 'broker.tls' must be true, false or \"insecure\" (got %r)" % (_path[0], t))
    c["ca"] = _get(b, "ca", "str", None, "broker.") if b.get("ca") is not None else None
    if c["ca"] is None and t is True:
        raise ConfigError("%s: key 'broker.ca' is missing: broker.tls true verifies the broker against "
                          "this CA file (the ca.der of sen broker tls); broker.tls \"insecure\" "
                          "encrypts without verifying" % _path[0])
    if c["ca"] is not None and t is not True:
        raise ConfigError("%s: key 'broker.ca' needs broker.tls true" % _path[0])
    if t == "insecure":
        print("config: %s: broker.tls \"insecure\": TLS without verifying the broker (anyone on "
              "the way can pose as it)" % _path[0])


# pins: the board profile's keys, checked for type only (the HAL uses them). Returns them.
def pins(raw):
    p = _get(raw, "pins", "obj")
    for k in p:
        if k not in _PINS:
            raise ConfigError("%s: key 'pins.%s' is not a known pin key (%s)" % (_path[0], k, ", ".join(_PINS)))
        if k not in ("i2c", "adc_vbat"):
            _get(p, k, "pin", None, "pins.")
    i = p.get("i2c")
    if i is not None:
        _get(p, "i2c", "obj", None, "pins.")
        if i.get("bus", 0) not in (0, 1, "soft"):
            raise ConfigError("%s: key 'pins.i2c.bus' must be 0, 1 or \"soft\"" % _path[0])
        _get(i, "sda", "pin", None, "pins.i2c.")
        _get(i, "scl", "pin", None, "pins.i2c.")
        _get(i, "freq", (1000, 1000000), 100000, "pins.i2c.")
    a = p.get("adc_vbat")
    if a is not None:
        _get(p, "adc_vbat", "obj", None, "pins.")
        _get(a, "pin", "pin", None, "pins.adc_vbat.")
        _get(a, "divider", "num", 1.0, "pins.adc_vbat.")
    return p


# sensors: the list, each entry's type, interval (default: every, config's interval_ms),
# address, name (optional, [a-z0-9_-]{1,32}, one per sensor: each reading's "s") and
# filter. None when absent (the HAL picks the board's default set).
def sensors(specs, every):
    if specs is None:
        return None
    if not isinstance(specs, list):
        raise ConfigError("%s: key 'sensors' must be a list" % _path[0])
    out = []  # type: list
    for n, s in enumerate(specs):
        pre = "sensors[%d]." % n
        if not isinstance(s, dict):
            s = {}
        t = _get(s, "type", list(_TYPES), None, pre)
        e = {"type": t, "interval_ms": _get(s, "interval_ms", (10, 86400000), every, pre)}
        if t in ("bme280", "sht31", "dht20", "bh1750"):
            e["addr"] = _get(s, "addr", (8, 119), None, pre)
        if s.get("name") is not None:
            e["name"] = v = _get(s, "name", "name", None, pre)
            if [x for x in out if x.get("name") == v]:
                raise ConfigError("%s: key '%sname' must differ from every other sensor's (got %r)"
                                  % (_path[0], pre, v))
        if t in ("ds18b20", "soil", "hcsr04", "adc"):
            kit(s, e, pre)
        f = s.get("filter")
        if f is not None:
            _get(s, "filter", "obj", None, pre)
            pre += "filter."
            if "median" in f:
                _get(f, "median", (1, 15), None, pre)
            elif "delta" in f:
                if isinstance(f["delta"], bool) or not isinstance(f["delta"], (int, float)) \
                        or f["delta"] < 0:
                    raise ConfigError("%s: key '%sdelta' must be a number >= 0" % (_path[0], pre))
                f["heartbeat_ms"] = _get(f, "heartbeat_ms", (10, 86400000), 600000, pre)
            else:
                raise ConfigError("%s: key '%s' must hold median or delta" % (_path[0], pre[:-1]))
        e["filter"] = f
        out.append(e)
    return out


# The kit's sensors (hardware/WIRING.md): their own keys, checked into e. A GPIO the sensor
# needs, or one half of the soil calibration without the other, is refused naming the key.
#   ds18b20  pin (its 1-wire pin, default pins.onewire), rom (16 hex digits as the board logs
#            them: that one probe), bits (resolution 9..12, default 12), probes (simulated
#            boards only: how many probes the simulated pin carries, 1..8)
#   soil     pin; dry and wet: raw counts in dry air and in water (both or neither, unequal;
#            without them only soil_raw is reported)
#   adc      pin; metric (default <name>_raw), scale and offset: metric = raw * scale + offset
#   hcsr04   trig, echo
def kit(s, e, pre):
    t = e["type"]
    for k in ("pin", "trig", "echo"):
        if s.get(k) is None:
            if k in {"soil": ("pin",), "adc": ("pin",), "hcsr04": ("trig", "echo")}.get(t, ()):
                raise ConfigError("%s: key '%s%s' is missing (a %s sensor needs its GPIO)"
                                  % (_path[0], pre, k, t))
        else:
            e[k] = _get(s, k, "pin", None, pre)
    bad = None
    if t == "ds18b20":
        e["bits"] = _get(s, "bits", (9, 12), 12, pre)
        e["probes"] = _get(s, "probes", (1, 8), 1, pre)
        v = s.get("rom")
        if v is not None:
            e["rom"] = v
            if not isinstance(v, str) or len(v) != 16 or [c for c in v if c not in "0123456789abcdef"]:
                bad = "rom", "must be 16 lower-case hex digits"
    elif t == "soil":
        if ("dry" in s) != ("wet" in s):
            raise ConfigError("%s: key '%s%s' is missing (give dry and wet together: the raw readings "
                              "in dry air and in water)" % (_path[0], pre, "wet" if "dry" in s else "dry"))
        if "dry" in s:
            e["dry"] = _get(s, "dry", (0, 65535), None, pre)
            e["wet"] = _get(s, "wet", (0, 65535), None, pre)
            if e["wet"] == e["dry"]:
                bad = "wet", "must differ from dry"
    elif t == "adc":
        for k in ("scale", "offset"):
            v = s.get(k)
            if v is not None:
                e[k] = v
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v - v != 0:
                    bad = k, "must be a number"
        v = s.get("metric")
        if v is None:  # <name>_raw, a metric name whatever the sensor's name
            v = (e.get("name") or "adc%d" % e["pin"]).replace("-", "_") + "_raw"
            v = v if v[0] in _NAME_CHARS[:26] else "adc_" + v
        e["metric"] = v
        if not isinstance(v, str) or not 0 < len(v) < 65 or v[0] not in _NAME_CHARS[:26] \
                or [c for c in v if c not in _NAME_CHARS[:-1]]:
            bad = "metric", "must match [a-z][a-z0-9_]{0,63}"
    if bad:
        raise ConfigError("%s: key '%s%s' %s (got %r)" % (_path[0], pre, bad[0], bad[1], s.get(bad[0])))
