# Sen firmware: console log lines, "<uptime ms> <message>".
import time

_t0 = time.ticks_ms()


def log(msg):
    print("%8d %s" % (time.ticks_diff(time.ticks_ms(), _t0), msg))
