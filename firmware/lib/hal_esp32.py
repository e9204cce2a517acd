# Sen firmware HAL for ESP32 boards (Espressif dev kits, OhStem Yolo UNO): pins and sensors
# from config.json (pins, sensors), WiFi, NTP, the hardware watchdog, deep sleep.
import binascii
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

_EPOCH_2000_S = const(946684800)  # 1970-01-01 .. 2000-01-01 in seconds
_WIFI_WAIT_MS = const(15000)
_RESETS = {machine.PWRON_RESET: "power", machine.HARD_RESET: "hard",
           machine.WDT_RESET: "watchdog", machine.DEEPSLEEP_RESET: "deepsleep",
           machine.SOFT_RESET: "soft"}


# What started this boot: "power" (power-on, a power cut before it), "watchdog" (a hang or a
# crash the watchdog ended), "deepsleep", "hard" (the reset pin), "soft", "other".
def reset_cause():
    return _RESETS.get(machine.reset_cause(), "other")


class Hal:
    def __init__(self, cfg):
        self._cfg = cfg
        if cfg["sensors"] is None:
            cfg["sensors"] = []
        self._wlan = network.WLAN(network.STA_IF)
        self._synced = False
        # The ESP32 port counts from 2000; Sen speaks Unix time. Ask the port, do not assume.
        self._off_s = _EPOCH_2000_S if time.gmtime(0)[0] == 2000 else 0
        self.reset = reset_cause()
        self._i2c = None
        self._wdt = machine.WDT(timeout=cfg["wdt_ms"]) if cfg["wdt_ms"] else None
        self.dev = cfg["device_id"] or "esp32-" + binascii.hexlify(machine.unique_id()).decode()

    # The I2C bus of config's pins.i2c, made once (None without sda and scl); hal_io's kit
    # drivers share it.
    def i2c(self):
        b = self._i2c
        p = self._cfg["pins"].get("i2c")
        if b is None and p and p.get("sda") is not None and p.get("scl") is not None:
            sda, scl = machine.Pin(p["sda"]), machine.Pin(p["scl"])
            f = p.get("freq", 100000)
            if p.get("bus", 0) == "soft":
                b = machine.SoftI2C(scl=scl, sda=sda, freq=f)
            else:
                b = machine.I2C(p.get("bus", 0), scl=scl, sda=sda, freq=f)
            self._i2c = b
        return b

    def driver(self, kind, addr):
        pins = self._cfg["pins"]
        if kind in ("bme280", "sht31", "dht20"):
            b = self.i2c()
            if b is None:
                return None
            if kind == "bme280":
                import drv_bme280
                return drv_bme280.BME280(b, addr)
            import drv_sht
            return drv_sht.SHT31(b, addr, kind)
        import drv_misc
        if kind == "dht22" and pins.get("dht22") is not None:
            import dht
            return drv_misc.Misc(kind, dht.DHT22(machine.Pin(pins["dht22"])))
        if kind == "vbat" and pins.get("adc_vbat"):
            a = pins["adc_vbat"]
            adc = machine.ADC(machine.Pin(a["pin"]))
            adc.atten(machine.ADC.ATTN_11DB)  # up to ~3.1 V at the pin
            return drv_misc.Misc(kind, adc, a.get("divider", 1.0))
        if kind == "chip_temp":
            fn = getattr(esp32, "mcu_temperature", None)  # S2/S3/C3: Celsius
            if fn is not None:
                return drv_misc.Misc(kind, fn)
            fn = getattr(esp32, "raw_temperature", None)  # original ESP32: Fahrenheit
            if fn is not None:
                return drv_misc.Misc(kind, fn, 1)
        return None

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

    def epoch_ms(self):
        if not self._synced:
            return None
        return time.time_ns() // 1000000 + self._off_s * 1000

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def diag(self, d):
        d["heap_free"] = gc.mem_free()
        d["reset"] = self.reset
        if self._wlan.isconnected():
            try:
                d["rssi_dbm"] = self._wlan.status("rssi")
            except OSError:
                pass

    # Without ms: a reboot.
    def deepsleep(self, ms=-1, until=0):
        if ms < 0:
            machine.reset()
        print("Sen sleeping: ms=%d until=%d" % (ms, until))
        machine.deepsleep(ms)

    reboot = deepsleep


# The cellular PPP link (ppp.py): network.PPP (MicroPython 1.24+) on the modem's UART (io.u,
# modem_io.py) once the modem answered its dial with CONNECT; PAP with cell.user/password.
# None where the firmware has no network.PPP. Never run on a board yet.
def ppp(io, c):
    P = getattr(network, "PPP", None)
    if P is None:
        return None
    p = P(io.u)
    p.active(True)
    if c.get("user"):
        p.connect(security=P.SEC_PAP, user=c["user"], key=c.get("password", ""))
    else:
        p.connect()
    return p
