# Sen firmware HAL for the unix port: a simulated board. The I2C sensors are register-level
# simulated devices from <repo>/hardware/simdev (main.py puts it on sys.path) on a simulated
# bus; faults come from faults.json in the flash dir (polled, see firmware/README.md):
#   {"sht31": "nack"|"stuck"|"range"|"crc"|"", ..., "wifi": "down"}
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
    import board as simboard  # type: ignore[import-not-found]  # hardware/simdev/board.py
except ImportError:
    simboard = None


class _Adc:  # the battery behind the divider, as the ADC pin sees it
    def __init__(self, phys, divider):
        self.phys = phys
        self.divider = divider

    def read_uv(self):
        return int(self.phys.vbat_v() / self.divider * 1000000)


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
        self.phys = None
        self._faults = None
        self._poll_t = time.ticks_ms()
        if simboard is not None:
            self.bus, self.phys = simboard.make_bus(cfg["seed"], [s for s in specs if "addr" in s])
            self._faults = simboard.FaultFile()
            self._poll(True)

    def _poll(self, force=False):
        if self._faults is None:
            return
        t = time.ticks_ms()
        if force or time.ticks_diff(t, self._poll_t) >= _POLL_MS:
            self._poll_t = t
            if self._faults.poll() and self.bus is not None:
                self.bus.set_faults(self._faults.faults)
                print("sim: faults %s" % (self._faults.faults,))

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
            return drv_misc.VBat(_Adc(self.phys, a.get("divider", 2.0)), a.get("divider", 2.0))
        if kind == "chip_temp":
            p = self.phys
            return drv_misc.ChipTemp(lambda: p.temp_c() + 12.0, False) if p is not None else None
        return None  # dht22: ESP32 only

    def net_up(self):
        self._poll()
        return self.bus is None or self.bus.fault("wifi") != "down"

    async def net_connect(self):
        return self.net_up()

    def ticks_ms(self):
        return time.ticks_ms()

    # Unix ms, or None while the clock is not synced (never, on the host)
    def epoch_ms(self):
        return time.time_ns() // 1000000

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
