# Sen firmware: the small sensors, in one class (kind = the sensor type):
#   "dht22"      src: dht.DHT22(machine.Pin(n)) (ESP32 only)
#   "vbat"       src: anything with read_uv() (machine.ADC or the simulated one); k: the
#                divider in front of the ADC pin
#   "chip_temp"  src: a function -> the chip's temperature, in degC, or in degF when k is
#                true (esp32.mcu_temperature / esp32.raw_temperature)


class Misc:
    raw = None  # DHT22: last (T, RH); a battery or a chip may rest at one value: never "stuck"

    def __init__(self, kind, src, k=0):
        self.name = self.kind = kind
        self.src = src
        self.k = k

    async def read(self):
        s, k = self.src, self.k
        if self.kind == "dht22":
            s.measure()  # ~25 ms, blocking; raises OSError on a timeout or bad checksum
            t, h = s.temperature(), s.humidity()
            self.raw = (t, h)
            return {"temp_c": t, "rh_pct": h}
        if self.kind == "vbat":
            return {"vbat_v": round(s.read_uv() * k / 1000000, 3)}
        v = s()
        return {"chip_c": round((v - 32) / 1.8 if k else v, 1)}
