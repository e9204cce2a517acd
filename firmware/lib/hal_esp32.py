# Sen firmware HAL for ESP32 boards (Espressif dev kits, OhStem Yolo UNO).
# Walking-skeleton stub: device id, WiFi, NTP and diagnostics are real; the sensor
# driver is not wired yet and says so.
import gc
import time

import machine
import network
from micropython import const

try:
    import ntptime
    _HAVE_NTP = True
except ImportError:
    _HAVE_NTP = False

BOARD = "esp32"
_EPOCH_2000_S = const(946684800)  # 1970-01-01 .. 2000-01-01 in seconds
_WIFI_WAIT_MS = const(15000)
_RESETS = {machine.PWRON_RESET: "power", machine.HARD_RESET: "hard",
           machine.WDT_RESET: "watchdog", machine.DEEPSLEEP_RESET: "deepsleep",
           machine.SOFT_RESET: "soft"}


class Hal:
    def __init__(self, cfg):
        self._cfg = cfg
        self._wlan = network.WLAN(network.STA_IF)
        self._synced = False
        # The ESP32 port counts from 2000; Sen speaks Unix time. Ask the port, do not assume.
        self._off_s = _EPOCH_2000_S if time.gmtime(0)[0] == 2000 else 0
        self._reset = _RESETS.get(machine.reset_cause(), "other")

    def device_id(self):
        d = self._cfg["device_id"]
        if d:
            return d
        return "esp32-" + "".join("%02x" % b for b in machine.unique_id())

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
                    return False
                await asyncio.sleep_ms(200)
        if not self._synced and _HAVE_NTP:
            try:
                ntptime.settime()
                self._synced = True
            except OSError:
                pass
        return True

    def ticks_ms(self):
        return time.ticks_ms()

    def epoch_ms(self):
        if not self._synced:
            return None
        return time.time_ns() // 1000000 + self._off_s * 1000

    def read_sensors(self):
        raise NotImplementedError("hal_esp32: sensor driver not wired yet (see hardware/boards)")

    def diag(self):
        d = {"heap_free": gc.mem_free(), "reset": self._reset}
        if self._wlan.isconnected():
            d["rssi_dbm"] = self._wlan.status("rssi")
        return d
