# Sen firmware: console log lines, "<uptime ms> <message>", and the crash-boot counter file.
import time

CRASH = "sen_crash.txt"
_t0 = time.ticks_ms()


def log(msg):
    print("%8d %s" % (time.ticks_diff(time.ticks_ms(), _t0), msg))


def crash_set(n):
    with open(CRASH, "w") as f:
        f.write("%d\n" % n)
