# Sen firmware HAL for the unix port: a simulated board. The I2C sensors are register-level
# simulated devices from <repo>/hardware/simdev/simdev.py (main.py puts it on sys.path) on a
# simulated bus; faults come from faults.json in the flash dir (polled, see firmware/README.md):
#   {"sht31": "nack"|"stuck"|"range"|"crc"|"", ..., "wifi": "down", "clock_offset_ms": N}
# The clock is the host's Unix epoch (always synced). Deep sleep ends the process with
# exit code 4 after writing sen_sleep.json; the simulator restarts it when the time is up.
# A reboot ends it with exit code 5.
import gc
import json
import os
import sys
import time

from micropython import const

_EXIT_SLEEP = const(4)
_POLL_MS = const(200)

try:
    import simdev  # type: ignore[import-not-found]  # hardware/simdev/simdev.py
except ImportError:
    simdev = None


# What started this boot, named as hal_esp32 names it: "deepsleep" after deepsleep(), else
# what the host says in SEN_RESET (e.g. "watchdog": the last boot crashed), else "power".
def reset_cause():
    try:
        os.stat("sen_sleep.json")
        return "deepsleep"
    except OSError:
        return os.getenv("SEN_RESET") or "power"


class Hal:
    def __init__(self, cfg):
        self._cfg = cfg
        self.dev = cfg["device_id"] or "sim-0000"
        if cfg["sensors"] is None:  # the default board
            cfg["sensors"] = s = []
            for t, a in (("bme280", 0x76), ("sht31", 0x44), ("dht20", 0x38)):
                s.append({"type": t, "addr": a, "interval_ms": cfg["interval_ms"], "filter": None})
        self.reset = reset_cause()
        try:
            os.remove("sen_sleep.json")  # written by deepsleep()
        except OSError:
            pass
        self._f = {}  # the faults in force (simdev.F)
        self._sig = None  # faults.json's (size, mtime) when last read
        self._t = time.ticks_ms()
        if simdev is not None:
            simdev.setup(cfg["seed"], cfg["sensors"])
            self._f = simdev.F
            self.feed(True)

    # The watchdog: nothing to feed on the host. Instead, faults.json is polled (every
    # 200 ms, or now) and re-read when its size or mtime changed.
    def feed(self, now=False):
        t = time.ticks_ms()
        if simdev is None or not now and time.ticks_diff(t, self._t) < _POLL_MS:
            return
        self._t = t
        try:
            st = os.stat("faults.json")
            sig = (st[6], st[8])
        except OSError:
            sig = None
        if sig == self._sig:
            return
        self._sig = sig
        f = {}
        if sig is not None:
            try:
                with open("faults.json") as fh:
                    f = json.load(fh)
            except (OSError, ValueError):
                pass
        self._f.clear()
        if isinstance(f, dict):
            self._f.update(f)
        print("sim: faults %s" % (self._f,))

    def driver(self, kind, addr):
        b = simdev  # the simulated bus (and ADC)
        if b is None:
            return None
        if kind == "bme280":
            import drv_bme280
            return drv_bme280.BME280(b, addr)
        if kind in ("sht31", "dht20"):
            import drv_sht
            return drv_sht.SHT31(b, addr, kind)
        import drv_misc
        if kind == "vbat":
            b.div = (self._cfg["pins"].get("adc_vbat") or {}).get("divider", 2)
            return drv_misc.Misc(kind, b, b.div)
        if kind == "chip_temp":
            return drv_misc.Misc(kind, lambda: simdev.phys()[0] + 12)
        return None  # dht22: ESP32 only

    async def net_connect(self):
        self.feed()
        return self._f.get("wifi") != "down"

    # Unix ms, or None while the clock is not synced (never, on the host); a clock jump
    # (faults.json "clock_offset_ms") shifts it
    def epoch_ms(self):
        self.feed()
        t = time.time_ns() // 1000000
        o = self._f.get("clock_offset_ms")
        if isinstance(o, int) and not isinstance(o, bool):
            t += o
        return t

    def diag(self, d):
        d["heap_free"] = gc.mem_free()
        d["reset"] = self.reset
        if self._f.get("wifi") != "down":
            d["rssi_dbm"] = -50

    # Deep sleep, simulated: the process ends; the simulator starts it again after ms.
    # Without ms: a reboot.
    def deepsleep(self, ms=-1, until=0):
        if ms < 0:
            print("Sen reboot")
            sys.exit(_EXIT_SLEEP + 1)
        with open("sen_sleep.json", "w") as f:
            f.write('{"until":%d,"ms":%d}' % (until, ms))
        print("Sen sleeping: ms=%d until=%d" % (ms, until))
        sys.exit(_EXIT_SLEEP)

    reboot = deepsleep


# The cellular PPP link (ppp.py) on the modem's wires io: the unix port has no network.PPP, so
# a simulated board dials (ATD*99# -> CONNECT) and is refused here.
def ppp(io, c):
    return None
