# Sen firmware: the pin primitives the kit's drivers need on an ESP32 (sensors_setup picks
# this module there; hardware/simdev/simkit.py answers the same calls on the unix port):
#   onewire(pin, cfg)  an object: reset() -> True on a presence pulse, writebit(b), readbit()
#                      -> 0/1, one time slot each (_onewire: in C, each slot timed with
#                      interrupts off); open drain with the pull-up on, plus 4.7k to 3V3
#   adc(s)             a function -> a 12-bit count: machine.ADC at 11 dB (up to ~3.1 V at
#                      config's pin), read_u16() >> 4
#   ping(s)            a function(timeout_us) -> the echo pulse in us after a 10 us pulse on
#                      trig, -1 when it had not ended within the timeout, -2 when it never
#                      began (machine.time_pulse_us)
#   i2c(hal)           the HAL's I2C bus (hal._i2c, shared with its own I2C sensors such as
#                      the Yolo UNO's DHT20), made here as hal_esp32 makes it when none of
#                      its sensors came first
# The one place outside the HAL that reads its config (hal._cfg) and its bus (hal._i2c).
import time

import machine


class _OneWire:
    def __init__(self, pin):
        import _onewire
        self.w = _onewire
        self.p = machine.Pin(pin, machine.Pin.OPEN_DRAIN, machine.Pin.PULL_UP)

    def reset(self):
        return self.w.reset(self.p)

    def readbit(self):
        return self.w.readbit(self.p)

    def writebit(self, b):
        self.w.writebit(self.p, b)


def onewire(pin, cfg):
    return _OneWire(pin)


def adc(s):
    a = machine.ADC(machine.Pin(s["pin"]))
    a.atten(machine.ADC.ATTN_11DB)
    return lambda: a.read_u16() >> 4


def ping(s):
    tr = machine.Pin(s["trig"], machine.Pin.OUT, value=0)
    ec = machine.Pin(s["echo"], machine.Pin.IN)

    def f(timeout):
        tr.value(1)
        time.sleep_us(10)
        tr.value(0)
        return machine.time_pulse_us(ec, 1, timeout)
    return f


def i2c(hal):
    return hal.i2c()  # the HAL's own bus (hal_esp32.i2c), shared with its I2C drivers
