# Sen firmware: the cellular transport's PPP path (config.json "cell": {"mode": "ppp"}): the
# modem dials into data mode (AT+CGDCONT, ATD*99# -> CONNECT) and its UART is handed to the
# port's network.PPP (the HAL's ppp(): MicroPython 1.24+ on ESP32), then Sen's own MQTT
# client (mqtt.py: its queue, QoS1, TLS) runs over the PPP link unchanged. The AT engine,
# power-on and registration are the cellular transport's (cellular.py, cellnet.py). The unix
# port has no network.PPP: there the dial runs up to CONNECT and hal_sim.ppp() refuses the
# hand-over (said on the console, tried again later). firmware/CELLULAR.md says what ran where.
import sys
import time

import asyncio
import mqtt
from micropython import const

_DIAL_MS = const(30000)  # ATD*99# -> CONNECT
_PPP_MS = const(30000)  # CONNECT -> the PPP link up (LCP, PAP, IPCP)
_GUARD_MS = const(1100)  # silence around "+++" (the escape from data mode)


# The modem from wherever it is to data mode -> None, or why not (cellnet.py's steps, loaded
# for it and dropped after)
async def dial(cl):
    net = __import__("cellnet")
    try:
        if not await cl._sync(1500) and not await net.power(cl, False):
            return "no answer from the modem after PWRKEY"
        why = await net.start(cl) or await net.register(cl)
    finally:
        del net
        del sys.modules["cellnet"]
    if why:
        return why
    at = cl.at
    await at.cmd('AT+CGDCONT=1,"IP","%s"' % cl.c["apn"])
    r = await at.cmd("ATD*99#", _DIAL_MS)
    return None if r.startswith("CONNECT") else "ATD*99#: %s" % (r or "no answer")


# Data mode back to commands: "+++" between two silences, then hang up
async def escape(cl):
    await asyncio.sleep_ms(_GUARD_MS)
    cl.at.write(b"+++")
    await asyncio.sleep_ms(_GUARD_MS)
    await cl.at.cmd("ATH", 5000)


class Client(mqtt.MQTTClient):
    # cl: the cellular transport (cellcfg.client built it) whose AT engine and state machine dial
    def __init__(self, cl, client_id, host, port, keepalive, will_topic, will_msg, log):
        mqtt.MQTTClient.__init__(self, client_id, host, port, keepalive, will_topic, will_msg, log)
        self.cell = cl
        self._p = None  # the network.PPP link
        self._data = False  # the modem is (or may be) in data mode
        self.dials = 0

    # Each connection of mqtt.py starts with the link: the PPP one, not the app's (WiFi's)
    async def _connect(self):
        self.net_connect = self._link
        return await mqtt.MQTTClient._connect(self)

    async def _link(self):
        p, cl = self._p, self.cell
        if p is not None:
            if p.isconnected():
                return True
            p.active(False)  # the link fell (or never came up)
            self._p = None
        if self._data:
            await escape(cl)
            self._data = False
        self.dials += 1
        why = await dial(cl)
        if why is None:
            self._data = True
            hal = __import__("hal_esp32" if sys.platform == "esp32" else "hal_sim")
            p = self._p = hal.ppp(cl.io, cl.c)
            t = time.ticks_ms()
            while p is not None and not p.isconnected():
                if time.ticks_diff(time.ticks_ms(), t) > _PPP_MS:
                    why = "CONNECT, but no PPP link in %d ms" % _PPP_MS
                    break
                await asyncio.sleep_ms(100)
            if p is None:
                why = "CONNECT, but this port has no network.PPP"
        if why:
            self._log("cell: ppp: %s" % why)
            return False
        self._log("cell: ppp up (rssi %s dBm, op %s)" % (cl.rssi, cl.op))
        return True

    def diag(self, d):
        self.cell.diag(d)

    async def disconnect(self):
        await mqtt.MQTTClient.disconnect(self)
        if self._p is not None:
            self._p.active(False)
            self._p = None
        if self._data:
            await escape(self.cell)
        await self.cell.disconnect()
