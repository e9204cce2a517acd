# Sen firmware HAL for ESP32 boards (Espressif dev kits, OhStem Yolo UNO): pins and sensors
# from config.json (pins, sensors), WiFi, NTP, the hardware watchdog, deep sleep.
import gc
import time

import esp32
import machine
import network
from micropython import const

try:
    import ntptime
    _HAVE_NTP = True
except ImportError:
    _HAVE_NTP = False

BOARD = "esp32"
EXIT_SLEEP = const(4)
DEFAULT_SENSORS = ()
_EPOCH_2000_S = const(946684800)  # 1970-01-01 .. 2000-01-01 in seconds
_WIFI_WAIT_MS = const(15000)
_RESETS = {machine.PWRON_RESET: "power", machine.HARD_RESET: "hard",
           machine.WDT_RESET: "watchdog", machine.DEEPSLEEP_RESET: "deepsleep",
           machine.SOFT_RESET: "soft"}


class Hal:
    def __init__(self, cfg):
        self._cfg = cfg
        if cfg["sensors"] is None:
            cfg["sensors"] = []
        self._wlan = network.WLAN(network.STA_IF)
        self._synced = False
        # The ESP32 port counts from 2000; Sen speaks Unix time. Ask the port, do not assume.
        self._off_s = _EPOCH_2000_S if time.gmtime(0)[0] == 2000 else 0
        self.reset = _RESETS.get(machine.reset_cause(), "other")
        self._i2c = None
        self._wdt = machine.WDT(timeout=cfg["wdt_ms"]) if cfg["wdt_ms"] else None

    def device_id(self):
        d = self._cfg["device_id"]
        if d:
            return d
        return "esp32-" + "".join("%02x" % b for b in machine.unique_id())

    def _bus(self):
        if self._i2c is None:
            p = self._cfg["pins"].get("i2c")
            if not p or p.get("sda") is None or p.get("scl") is None:
                return None
            sda, scl = machine.Pin(p["sda"]), machine.Pin(p["scl"])
            f = p.get("freq", 100000)
            if p.get("bus", 0) == "soft":
                self._i2c = machine.SoftI2C(scl=scl, sda=sda, freq=f)
            else:
                self._i2c = machine.I2C(p.get("bus", 0), scl=scl, sda=sda, freq=f)
        return self._i2c

    def driver(self, kind, addr):
        pins = self._cfg["pins"]
        if kind == "bme280":
            import drv_bme280
            b = self._bus()
            return drv_bme280.BME280(b, addr) if b else None
        if kind in ("sht31", "dht20"):
            import drv_sht
            b = self._bus()
            if b is None:
                return None
            return drv_sht.SHT31(b, addr) if kind == "sht31" else drv_sht.DHT20(b, addr)
        import drv_misc
        if kind == "dht22" and pins.get("dht22") is not None:
            import dht
            return drv_misc.DHT22(dht.DHT22(machine.Pin(pins["dht22"])))
        if kind == "vbat" and pins.get("adc_vbat"):
            a = pins["adc_vbat"]
            adc = machine.ADC(machine.Pin(a["pin"]))
            adc.atten(machine.ADC.ATTN_11DB)  # up to ~3.1 V at the pin
            return drv_misc.VBat(adc, a.get("divider", 1.0))
        if kind == "chip_temp":
            fn = getattr(esp32, "mcu_temperature", None)  # S2/S3/C3: Celsius
            if fn is not None:
                return drv_misc.ChipTemp(fn, False)
            fn = getattr(esp32, "raw_temperature", None)  # original ESP32: Fahrenheit
            if fn is not None:
                return drv_misc.ChipTemp(fn, True)
        return None

    def net_up(self):
        return self._wlan.isconnected()

    # Brings WiFi up (no-op when it is) and syncs the clock once; True when online.
    async def net_connect(self):
        import asyncio
        w = self._wlan
        if not w.isconnected():
            ssid = self._cfg["ssid"]
            if not ssid:
                return False
            w.active(True)
            w.connect(ssid, self._cfg["password"])
            t0 = time.ticks_ms()
            while not w.isconnected():
                if time.ticks_diff(time.ticks_ms(), t0) > _WIFI_WAIT_MS:
                    w.disconnect()
                    return False
                self.feed()
                await asyncio.sleep_ms(200)
        if not self._synced and _HAVE_NTP:
            try:
                ntptime.settime()
                self._synced = True
            except (OSError, OverflowError):
                pass
        return True

    def ticks_ms(self):
        return time.ticks_ms()

    def epoch_ms(self):
        if not self._synced:
            return None
        return time.time_ns() // 1000000 + self._off_s * 1000

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def rssi(self):
        if not self._wlan.isconnected():
            return None
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None

    def diag(self, d):
        d["heap_free"] = gc.mem_free()
        d["reset"] = self.reset
        r = self.rssi()
        if r is not None:
            d["rssi_dbm"] = r

    def deepsleep(self, ms, until):
        print("Sen sleeping: ms=%d until=%d" % (ms, until))
        machine.deepsleep(ms)

    def reboot(self):
        machine.reset()
