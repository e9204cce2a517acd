# Sen firmware: one sampling task per sensor, each with its own interval and optional
# filter ({"median": N} over the last N samples, or {"delta": X, "heartbeat_ms": M}: send
# only when a metric moved by X, or M ms passed). A failing sensor (bus error, bad CRC,
# out of range, a stuck raw value) is reported in diagnostics as e_<name> and the others
# sample on; it is retried at its interval. Intervals changed by cmd (cmd.py) are kept in
# STATE and win over config's from the next boot on.
# A sensor's name (each of its readings' "s", its e_<name> in diagnostics, cmd's "sensor"):
# config's "name", else the driver's (bme280, sht31, ...); two unnamed ones of a kind are
# told apart by their address (sht31_44, sht31_45).
import json
import time

import asyncio
from micropython import const

_STUCK_N = const(5)  # the same raw value this many times in a row = stuck
_STEP_MS = const(50)  # a woken sensor (cmd) samples within this
_NACK = (19, 116, 110)  # ENODEV, ETIMEDOUT (ESP32), ETIMEDOUT (POSIX)
_REASONS = ("crc", "range", "stuck", "busy", "calibrated")
STATE = "sen_state.json"  # {"interval_ms": all sensors, "i_<name>": one}, written by cmd.py


def build(specs, hal, log):
    out = []
    named = []  # the samplers config names
    for s in specs:
        t = s["type"]
        try:
            d = hal.driver(t, s.get("addr"))
        except (OSError, ValueError) as e:
            log("sensor %s: cannot set up (%r), skipped" % (t, e))
            d = None
        if d is None:
            log("sensor %s: not available on this board, skipped" % t)
            continue
        x = Sampler(d, s["interval_ms"], s.get("filter"))
        if s.get("name"):
            x.name = s["name"]
            named.append(x)
        out.append(x)
    names = [x.name for x in out]
    for x in out:  # two sensors of one type: name them by address
        if names.count(x.name) > 1 and x not in named:
            x.name = "%s_%x" % (x.name, getattr(x.drv, "addr", 0))
    try:  # intervals changed by cmd
        with open(STATE) as f:
            st = json.load(f)
        for x in out:
            v = st.get("i_" + x.name, st.get("interval_ms"))
            if isinstance(v, int) and 10 <= v <= 86400000:
                x.every = v
    except (OSError, ValueError, AttributeError):
        pass
    return out


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
                self.err = None
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
