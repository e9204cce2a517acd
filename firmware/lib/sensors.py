# Sen firmware: one sampling task per sensor, each with its own interval and optional
# filter ({"median": N} over the last N samples, or {"delta": X, "heartbeat_ms": M}: send
# only when a metric moved by X, or M ms passed). A failing sensor (bus error, bad CRC,
# out of range, a stuck raw value) is reported in diagnostics as e_<name> and the others
# sample on; it is retried at its interval.
import time

import asyncio
from micropython import const

_STUCK_N = const(5)  # the same raw value this many times in a row = stuck
_STEP_MS = const(50)  # a woken sensor (cmd) samples within this
_ENODEV = const(19)
_ETIMEDOUT = const(116)
_ETIMEDOUT_POSIX = const(110)


def build(specs, hal, log):
    out = []
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
        out.append(Sampler(d, s["interval_ms"], s.get("filter")))
    names = [x.name for x in out]
    for x in out:  # two sensors of one type: name them by address
        if names.count(x.name) > 1:
            x.name = "%s_%x" % (x.name, getattr(x.drv, "addr", 0))
    return out


def _reason(e):
    if isinstance(e, OSError):
        n = e.args[0] if e.args else 0
        return "nack" if n in (_ENODEV, _ETIMEDOUT, _ETIMEDOUT_POSIX) else "io%d" % n
    s = str(e)
    for r in ("crc", "range", "stuck", "busy", "calibrated"):
        if r in s:
            return r
    return "bad"


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


class Sampler:
    def __init__(self, drv, every, filt):
        self.drv = drv
        self.name = drv.name
        self.every = every
        self.filt = filt
        self.err = None  # reason while failing
        self.errors = 0
        self._raw = None
        self._same = 0
        self._win = []
        self._sent = None
        self._sent_t = 0
        self.wake = False  # set: sample now and start a new interval (cmd)

    def set_interval(self, ms):
        self.every = ms
        self.wake = True

    async def _sample(self):
        m = await self.drv.read()
        raw = self.drv.raw
        if raw is not None and raw == self._raw:
            self._same += 1
            if self._same >= _STUCK_N - 1:
                raise ValueError("stuck")
        else:
            self._same = 0
        self._raw = raw
        return m

    def _filter(self, m, now):
        f = self.filt
        if not f:
            return m
        if "median" in f:
            self._win.append(m)
            if len(self._win) > f["median"]:
                self._win.pop(0)
            out = {}
            for k in m:
                out[k] = _median([w[k] for w in self._win if k in w])
            return out
        last = self._sent
        if last is not None and time.ticks_diff(now, self._sent_t) < f["heartbeat_ms"]:
            moved = False
            for k in m:
                if k not in last or abs(m[k] - last[k]) >= f["delta"]:
                    moved = True
            if not moved:
                return None
        self._sent = m
        self._sent_t = now
        return m

    # record(metrics) -> False when the board wants no more readings
    async def run(self, record):
        nxt = time.ticks_ms()
        while True:
            try:
                m = await self._sample()
                self.err = None
            except (OSError, ValueError) as e:
                r = _reason(e)
                if r != self.err:
                    print("sensor %s: %s (%r)" % (self.name, r, e))
                self.err = r
                self.errors += 1
                m = None
            if m:
                m = self._filter(m, time.ticks_ms())
                if m and not record(m):
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
