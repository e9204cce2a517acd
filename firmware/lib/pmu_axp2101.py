# Sen firmware: the X-Powers AXP2101 power manager of LilyGO's T-SIM7080G-S3, only as far as
# its cellular modem needs it: modem_io.py calls modem_on() before the first PWRKEY, since the
# SIM7080G is powered from the PMU's DC3 rail (3000 mV) and its UART goes through a level
# shifter on BLDO1 (3300 mV). Nothing else is changed (DC1 feeds the ESP32 itself): each
# register is read, changed in its own bits and written back. I2C address 0x34; registers:
# 0x03 chip id (0x4A; 0x47 on some batches), 0x80 DC on/off (bit 2 DC3), 0x84 DC3 voltage
# (bits 6-0: 88 + (mV - 1600) / 100 from 1600 to 3400 mV), 0x90 LDO on/off (bit 4 BLDO1),
# 0x96 BLDO1 voltage (bits 4-0: (mV - 500) / 100). Unverified on a real board
# (firmware/CELLULAR.md, Wiring, provisioning, flashing).
from micropython import const

_ADDR = const(0x34)


def _set(i2c, reg, keep, bits):
    b = i2c.readfrom_mem(_ADDR, reg, 1)
    i2c.writeto_mem(_ADDR, reg, bytes(((b[0] & keep) | bits,)))


# The modem's rails on, each voltage set before its output is: OSError when nothing answers
# at 0x34, ValueError when what answers is no AXP2101
def modem_on(i2c):
    c = i2c.readfrom_mem(_ADDR, 0x03, 1)[0]
    if c != 0x4A and c != 0x47:
        raise ValueError("chip id 0x%02x at 0x34: not an AXP2101" % c)
    _set(i2c, 0x84, 0x80, 88 + (3000 - 1600) // 100)  # DC3 3000 mV
    _set(i2c, 0x80, 0xFF, 0x04)
    _set(i2c, 0x96, 0xE0, (3300 - 500) // 100)  # BLDO1 3300 mV
    _set(i2c, 0x90, 0xFF, 0x10)
