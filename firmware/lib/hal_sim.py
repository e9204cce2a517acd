# Sen firmware HAL for the unix port: a simulated board. The I2C sensors are register-level
# simulated devices from <repo>/hardware/simdev/simdev.py (main.py puts it on sys.path) on a
# simulated bus; faults come from faults.json in the flash dir (polled, see firmware/README.md):
#   {"sht31": "nack"|"stuck"|"range"|"crc"|"", ..., "wifi": "down", "clock_offset_ms": N}
# The clock is the host's Unix epoch (always synced). Deep sleep ends the process with
# exit code 4 after writing sen_sleep.json; the simulator restarts it when the time is up.
import gc
import json
import sys
import time

from micropython import const

BOARD = "sim"
EXIT_SLEEP = const(4)
_SLEEP_FILE = "sen_sleep.json"
_POLL_MS = const(200)
DEFAULT_SENSORS = ({"type": "bme280", "addr": 0x76}, {"type": "sht31", "addr": 0x44},
                   {"type": "dht20", "addr": 0x38})

try:
    import simdev  # type: ignore[import-not-found]  # hardware/simdev/simdev.py
except ImportError:
    simdev = None


class Hal:
    def __init__(self, cfg):
        self._cfg = cfg
        self._dev = cfg["device_id"] or "sim-0000"
        specs = cfg["sensors"]
        if specs is None:
            specs = [dict(s, interval_ms=cfg["interval_ms"], filter=None) for s in DEFAULT_SENSORS]
            cfg["sensors"] = specs
        self.reset = "power"
        try:
            with open(_SLEEP_FILE) as f:
                json.load(f)
            self.reset = "deepsleep"
            import os
            os.remove(_SLEEP_FILE)
        except (OSError, ValueError):
            pass
        self.bus = None
        self._poll_t = time.ticks_ms()
        if simdev is not None:
            self.bus = simdev.setup(cfg["seed"], specs)
            self._poll(True)

    def _poll(self, force=False):
        if self.bus is None:
            return
        t = time.ticks_ms()
        if force or time.ticks_diff(t, self._poll_t) >= _POLL_MS:
            self._poll_t = t
            if simdev.poll():
                print("sim: faults %s" % (simdev.F,))

    def device_id(self):
        return self._dev

    def driver(self, kind, addr):
        if self.bus is None:
            return None
        if kind == "bme280":
            import drv_bme280
            return drv_bme280.BME280(self.bus, addr)
        if kind in ("sht31", "dht20"):
            import drv_sht
            return drv_sht.SHT31(self.bus, addr) if kind == "sht31" else drv_sht.DHT20(self.bus, addr)
        import drv_misc
        if kind == "vbat":
            a = self._cfg["pins"].get("adc_vbat") or {}
            self.bus.div = a.get("divider", 2.0)
            return drv_misc.VBat(self.bus, self.bus.div)
        if kind == "chip_temp":
            return drv_misc.ChipTemp(lambda: simdev.temp_c() + 12.0, False)
        return None  # dht22: ESP32 only

    def net_up(self):
        self._poll()
        return simdev is None or simdev.F.get("wifi") != "down"

    async def net_connect(self):
        return self.net_up()

    def ticks_ms(self):
        return time.ticks_ms()

    # Unix ms, or None while the clock is not synced (never, on the host); a clock jump
    # (faults.json "clock_offset_ms") shifts it
    def epoch_ms(self):
        self._poll()
        t = time.time_ns() // 1000000
        if simdev is not None:
            o = simdev.F.get("clock_offset_ms")
            if isinstance(o, int) and not isinstance(o, bool):
                t += o
        return t

    def feed(self):  # watchdog: nothing to feed on the host
        self._poll()

    def rssi(self):
        return -50 if self.net_up() else None

    def diag(self, d):
        d["heap_free"] = gc.mem_free()
        d["reset"] = self.reset
        r = self.rssi()
        if r is not None:
            d["rssi_dbm"] = r

    # Deep sleep, simulated: the process ends; the simulator starts it again after ms.
    def deepsleep(self, ms, until):
        with open(_SLEEP_FILE, "w") as f:
            f.write('{"until":%d,"ms":%d}' % (until, ms))
        print("Sen sleeping: ms=%d until=%d" % (ms, until))
        sys.exit(EXIT_SLEEP)

    def reboot(self):
        print("Sen reboot")
        sys.exit(EXIT_SLEEP + 1)
