# Sen firmware: the small sensors. DHT22 through MicroPython's dht module (ESP32 only),
# battery voltage on an ADC behind a divider, the chip's own temperature.


class DHT22:
    name = "dht22"

    def __init__(self, dev):
        self.dev = dev  # dht.DHT22(machine.Pin(n))
        self.raw = None

    async def read(self):
        self.dev.measure()  # ~25 ms, blocking; raises OSError on a timeout or bad checksum
        t = self.dev.temperature()
        h = self.dev.humidity()
        self.raw = (t, h)
        return {"temp_c": t, "rh_pct": h}


class VBat:
    name = "vbat"

    def __init__(self, adc, divider):
        self.adc = adc  # anything with read_uv(): machine.ADC or the simulated one
        self.divider = divider
        self.raw = None

    async def read(self):
        uv = self.adc.read_uv()
        self.raw = None  # a battery may rest at one value: never "stuck"
        return {"vbat_v": round(uv * self.divider / 1000000, 3)}


class ChipTemp:
    name = "chip_temp"

    def __init__(self, fn, fahrenheit):
        self.fn = fn  # esp32.mcu_temperature (C) or esp32.raw_temperature (F)
        self.f = fahrenheit
        self.raw = None

    async def read(self):
        v = self.fn()
        if self.f:
            v = (v - 32) / 1.8
        return {"chip_c": round(v, 1)}
