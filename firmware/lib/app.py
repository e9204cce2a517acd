# Sen firmware application: sample at interval_ms, batch readings into payload v1 envelopes,
# publish them QoS1 to sen/v1/{site}/{device}/telemetry; a reading leaves RAM only when the
# envelope holding it was PUBACKed. Status (retained) at connect, "offline" as last will.
import gc
import sys
import time

import asyncio
import bootcount
import bufs
import config
import payload
from log import log
from micropython import const
from mqtt import MQTTClient
from pending import Pending

VERSION = "0.1.0"
_LINGER_MS = const(5000)  # a reading waits at most this long for batch_max companions


def _hal_module():
    if sys.platform == "esp32":
        import hal_esp32
        return hal_esp32
    import hal_sim
    return hal_sim


class App:
    def __init__(self, cfg, hal, boot, board):
        self.cfg = cfg
        self.hal = hal
        self.boot = boot
        self.board = board
        self.dev = hal.device_id()
        base = "sen/v1/%s/%s/" % (cfg["site"], self.dev)
        self.t_tel = base + "telemetry"
        self.t_status = base + "status"
        self.q = Pending(bufs.queue, bufs.QUEUE_SLOTS)
        self._env = bufs.env  # one envelope in flight at a time
        self.seq = 0
        self.acked = 0
        self.sent = 0
        self.peak = 0
        self._up = 0
        self._up_t = hal.ticks_ms()
        self._sampled = asyncio.Event()
        self._first_t = 0  # ticks when the oldest unsent reading was queued
        self._sampling = True
        self._done = asyncio.Event()
        self.error = None
        self.mq = MQTTClient(self.dev, cfg["host"], cfg["port"], cfg["keepalive"],
                             self.t_status, b'{"state":"offline"}', log)
        self.mq.net_connect = hal.net_connect
        self.mq.on_connect = self._online

    # Uptime in ms, summed from ticks deltas so it survives the ticks wrap (~12 days on ESP32).
    def uptime(self):
        t = self.hal.ticks_ms()
        self._up += time.ticks_diff(t, self._up_t)
        self._up_t = t
        return self._up

    def _heap(self):
        a = gc.mem_alloc()
        if a > self.peak:
            self.peak = a

    async def _online(self):
        msg = '{"state":"online","boot":%d,"board":"%s"}' % (self.boot, self.board)
        await self.mq.publish(self.t_status, msg.encode(), 1, True)

    async def _sampler(self):
        hal = self.hal
        every = self.cfg["interval_ms"]
        limit = self.cfg["max_readings"]
        nxt = hal.ticks_ms()
        while limit == 0 or self.seq < limit:
            try:
                m = hal.read_sensors()
            except OSError as e:  # a bus error is logged and the board samples on
                log("sensor: %r" % (e,))
                m = None
            if m:
                enc = payload.reading(self.seq + 1, hal.epoch_ms(), self.uptime(), m)
                if enc is not None:
                    self.seq += 1
                    if not self.q.count:
                        self._first_t = hal.ticks_ms()
                    if self.q.push(self.seq, enc):
                        self._sampled.set()
                    else:
                        log("reading seq %d too big for a slot (%d B), skipped" % (self.seq, len(enc)))
            nxt = time.ticks_add(nxt, every)
            wait = time.ticks_diff(nxt, hal.ticks_ms())
            if wait < 0:  # fell behind (long GC, slow sensor): do not burst to catch up
                nxt = hal.ticks_ms()
                wait = 0
            await asyncio.sleep_ms(wait)
        self._sampling = False
        self._sampled.set()
        log("sampled %d readings, sampling done" % self.seq)

    # ms until the pending readings should go: 0 = now (a full batch, a reading that waited
    # _LINGER_MS, or sampling is over), -1 = nothing pending.
    def _due_in(self, bmax):
        if not self.q.count:
            return -1
        if self.q.count >= bmax or not self._sampling:
            return 0
        return max(0, _LINGER_MS - time.ticks_diff(self.hal.ticks_ms(), self._first_t))

    async def _publisher(self):
        limit = self.cfg["max_readings"]
        bmax = self.cfg["batch_max"]
        while True:
            if limit and self.acked + self.q.dropped >= limit:
                self._done.set()
                return
            due = self._due_in(bmax)
            if due:
                self._sampled.clear()
                try:
                    if due < 0:
                        await self._sampled.wait()
                    else:
                        await asyncio.wait_for_ms(self._sampled.wait(), due)
                except asyncio.TimeoutError:
                    self._first_t = time.ticks_add(self.hal.ticks_ms(), -_LINGER_MS)
                continue
            await self.mq.wait_connected()
            d = self.hal.diag()
            d["outbox"] = self.q.count
            d["dropped"] = self.q.dropped
            size, n, last = payload.envelope(self._env, self.dev, self.boot, self.uptime(),
                                             self.board, self.q, bmax, d)
            env = memoryview(self._env)[:size]  # stays untouched until its PUBACK
            gc.collect()
            self._heap()  # live heap with an envelope built and the queue as it stands
            pid = await self.mq.publish(self.t_tel, env, 1, False)
            first = self.q.peek(0)[0]
            await self.mq.wait_ack(pid)
            self.q.ack_upto(last)
            self.acked += n
            self.sent += 1
            if self.q.count:
                self._first_t = self.hal.ticks_ms()  # close enough: the rest waited less
            log("tx seq %d-%d (%d readings, %d B) acked" % (first, last, n, len(env)))

    async def _guard(self, coro):
        try:
            await coro
        except Exception as e:  # any task dying stops the board with the reason
            sys.print_exception(e)
            self.error = e
            self._done.set()

    async def run(self):
        tasks = [asyncio.create_task(self._guard(self.mq.run())),
                 asyncio.create_task(self._guard(self._sampler())),
                 asyncio.create_task(self._guard(self._publisher()))]
        await self._done.wait()
        if self.error is None:
            await self.mq.wait_idle()  # the status message too
        for t in tasks:
            t.cancel()
        await self.mq.disconnect()


# Entry point used by main.py; returns the process exit code.
def main():
    halmod = _hal_module()
    try:
        cfg = config.load("config.json", halmod.BOARD)
        boot = bootcount.next_boot()
    except (config.ConfigError, bootcount.BootCountError) as e:
        print("Sen config error: %s" % e)
        return 2
    hal = halmod.Hal(cfg)
    gc.collect()
    app = App(cfg, hal, boot, cfg["board"])
    print("Sen firmware %s device=%s boot=%d board=%s site=%s port=%s" % (
        VERSION, app.dev, boot, app.board, cfg["site"], sys.platform))
    log("broker %s:%d interval %d ms batch %d max_readings %d" % (
        cfg["host"], cfg["port"], cfg["interval_ms"], cfg["batch_max"], cfg["max_readings"]))
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: no DISCONNECT, so the broker sends the will
        print("Sen interrupted: %d readings acked, %d pending" % (app.acked, app.q.count))
        return 130
    if app.error is not None:
        print("Sen stopped: %r" % (app.error,))
        return 1
    code = 0 if app.q.dropped == 0 else 1
    print("Sen done: %d readings acked in %d envelopes, dropped %d, boot %d, peak heap %d B"
          % (app.acked, app.sent, app.q.dropped, boot, app.peak))
    return code
