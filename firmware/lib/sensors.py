# Sen firmware: one sampling task per sensor, each with its own interval and optional
# filter ({"median": N} over the last N samples, or {"delta": X, "heartbeat_ms": M}: send
# only when a metric moved by X, or M ms passed). A failing sensor (bus error, bad CRC,
# out of range, a stuck raw value) is reported in diagnostics as e_<name> and the others
# sample on; it is retried at its interval. A driver's own flag (its err: the soil probe's
# "clamped") is reported the same way while its readings still go. Intervals changed by cmd
# (cmd.py) are kept in STATE and win over config's from the next boot on.
# A sensor's name (each of its readings' "s", its e_<name> in diagnostics, cmd's "sensor"):
# config's "name", else the driver's (bme280, sht31, ...); two unnamed ones of a kind are
# told apart by their address (sht31_44, sht31_45).
import time

import asyncio
from micropython import const

_STUCK_N = const(5)  # the same raw value this many times in a row = stuck
_STEP_MS = const(50)  # a woken sensor (cmd) samples within this
_NACK = (19, 116, 110)  # ENODEV, ETIMEDOUT (ESP32), ETIMEDOUT (POSIX)
_REASONS = ("crc", "range", "stuck", "busy", "calibrated", "timeout", "poweron")
STATE = "sen_state.json"  # {"interval_ms": all sensors, "i_<name>": one}, written by cmd.py


# The samplers for config's sensors (sensors_setup.build); that code runs once, at boot, and
# is garbage once the samplers exist.
def build(specs, hal, log):
    import gc
    import sys

    import sensors_setup
    try:
        return sensors_setup.build(specs, hal, log)
    finally:
        del sys.modules["sensors_setup"]
        gc.collect()  # its room in one piece for what the app loads next (the transport)


class Sampler:
    def __init__(self, drv, every, filt):
        self.drv = drv
        self.name = drv.name
        self.every = every
        self.filt = filt
        self.err = None  # reason while failing
        self.errors = 0
        self.wake = False  # set (cmd): sample now and start a new interval

    # record(name, metrics) -> False when the board wants no more readings
    async def run(self, record):
        d, f = self.drv, self.filt
        last_raw = sent = None
        same = 0
        win = []
        nxt = sent_t = time.ticks_ms()
        while True:
            m = None
            try:
                m = await d.read()
                if d.raw is not None and d.raw == last_raw:
                    same += 1
                    if same >= _STUCK_N - 1:
                        raise ValueError("stuck")
                else:
                    same = 0
                last_raw = d.raw
                self.err = getattr(d, "err", None)  # a flag with the reading (soil: "clamped")
            except (OSError, ValueError) as e:
                m = None
                if isinstance(e, OSError):
                    n = e.args[0] if e.args else 0
                    r = "nack" if n in _NACK else "io%d" % n
                else:
                    r = "bad"
                    for x in _REASONS:
                        if x in str(e):
                            r = x
                            break
                if r != self.err:
                    print("sensor %s: %s (%r)" % (self.name, r, e))
                self.err = r
                self.errors += 1
            now = time.ticks_ms()
            if m and f and "median" in f:
                win.append(m)
                if len(win) > f["median"]:
                    win.pop(0)
                out = {}
                for k in m:
                    v = sorted([w[k] for w in win if k in w])
                    h = len(v) // 2
                    out[k] = v[h] if len(v) % 2 else (v[h - 1] + v[h]) / 2
                m = out
            elif m and f:  # delta with heartbeat
                if sent is not None and time.ticks_diff(now, sent_t) < f["heartbeat_ms"]:
                    moved = False
                    for k in m:
                        if k not in sent or abs(m[k] - sent[k]) >= f["delta"]:
                            moved = True
                    if not moved:
                        m = None
                if m:
                    sent = m
                    sent_t = now
            if m and not record(self.name, m):
                return
            nxt = time.ticks_add(nxt, self.every)
            wait = time.ticks_diff(nxt, time.ticks_ms())
            if wait < 0:  # fell behind: do not burst to catch up
                nxt = time.ticks_ms()
                wait = 0
            # sleep in short steps instead of an Event and wait_for per sensor: no Event
            # object and no timeout task per sample
            self.wake = False
            while wait > 0 and not self.wake:
                await asyncio.sleep_ms(min(wait, _STEP_MS))
                wait = time.ticks_diff(nxt, time.ticks_ms())
            if self.wake:
                nxt = time.ticks_ms()  # a new interval starts now
