# Sen firmware application: sensors sample into the outbox (flash or RAM), the publisher
# sends the outbox's readings as payload v1 envelopes (MQTT QoS1 or serial frames), and a
# reading leaves the outbox only when the gateway's end-to-end ack covers it (ack "e2e" and
# "auto"; "puback": the broker's PUBACK is enough). "auto" differs from "e2e" only until an
# ack is first seen: no resend on ack timeout, and max_readings counts PUBACKs.
import gc
import json
import sys
import time

import asyncio
import bufs
import payload
import sensors
from log import crash_set, log
from micropython import const
from outbox import Outbox

VERSION = "0.2.0"
_LINGER_MS = const(5000)  # a reading waits at most this long for batch_max companions
_STABLE_MS = const(60000)  # running this long clears the crash-boot counter
_LARGEST_EVERY_MS = const(30000)
_STEP_MS = const(20)  # how often a waiting task looks at its flag
STATE = "sen_state.json"  # settings changed by cmd, persisted
OUTBOX = "sen_outbox.bin"


class App:
    def __init__(self, cfg, hal, boot):
        self.cfg = cfg
        self.hal = hal
        self.boot = boot
        self.board = board = cfg["board"]
        self.dev = hal.device_id()
        base = "sen/v1/%s/%s/" % (cfg["site"], self.dev)
        self.t_tel = base + "telemetry"
        self.t_status = base + "status"
        self.serial = cfg["transport"] == "serial"
        self.ob = Outbox(None if cfg["outbox_ram"] else OUTBOX, cfg["outbox_max"])
        self.ob.open()
        if self.ob.torn:
            log("outbox: cut %d B of a torn record" % self.ob.torn)
        self.env = payload.Builder(bufs.env, self.dev, board, cfg["site"] if self.serial else None)
        self.seq = 0
        self.limit = cfg["max_readings"]
        self.sleepy = cfg["mode"] == "deep_sleep"
        self.e2e = cfg["ack"] == "e2e"  # end-to-end acks rule the outbox
        self.acked_e2e = 0
        self.sent = 0
        self.peak = 0
        self.bad_cmd = 0
        self.anchor = None  # gateway's clock anchor for this boot (ts = anchor + uptime)
        self._last_ts = 0
        self._up = 0
        self._up_t = hal.ticks_ms()
        # a reading, an ack, a connect: flags polled every _STEP_MS, not asyncio Events (no
        # Event objects, no timeout task per wait, and a serial board never loads
        # asyncio's event and funcs modules)
        self._ev = False
        self._first_t = 0
        self._ack_t = 0
        self._flush = False
        self._reboot = False
        self._largest = (0, -_LARGEST_EVERY_MS)
        self._done = False
        self._stasks = []
        self._sampled_all = False
        self.error = None
        self.samplers = sensors.build(cfg["sensors"], hal, log)
        self._load_state()
        self.mq = _serial() if self.serial else _mqtt(cfg, self.dev, base, hal)
        self.mq.on_connect = self._online
        self.mq.on_message = self._on_message

    # Uptime in ms, summed from ticks deltas so it survives the ticks wrap (~12 days on ESP32).
    def uptime(self):
        t = self.hal.ticks_ms()
        self._up += time.ticks_diff(t, self._up_t)
        self._up_t = t
        return self._up

    def epoch_ms(self):
        t = self.hal.epoch_ms()
        if t is None and self.anchor is not None:
            t = self.anchor + self.uptime()
        return t

    # ---- settings changed by cmd (sen_state.json) ----
    def _load_state(self):
        try:
            with open(STATE) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return
        for s in self.samplers:
            v = st.get("i_" + s.name, st.get("interval_ms"))
            if isinstance(v, int) and 10 <= v <= 86400000:
                s.every = v

    # ---- sampling ----
    def record(self, m):
        if self.limit and self.seq >= self.limit:
            return False
        ts = self.epoch_ms()
        if ts is not None:  # strictly increasing: two readings never share a point in InfluxDB
            ts = max(ts, self._last_ts + 1)
            self._last_ts = ts
        up = self.uptime()
        enc = payload.reading(self.seq + 1, ts, up, m)
        if enc is None:
            return True
        if not self.ob.unsent:
            self._first_t = self.hal.ticks_ms()
        # a reading too big for a record keeps no seq: a hole in a boot's seqs would hold the
        # gateway's contiguous ack below it for good
        if not self.ob.push(self.boot, self.seq + 1, up, enc):
            log("reading too big (%d B), skipped" % len(enc))
            return True
        self.seq += 1
        self._ev = True
        return not self.sleepy and not (self.limit and self.seq >= self.limit)

    def _sampling(self):
        return not self._sampled_all

    # ---- messages from the gateway ----
    def _on_message(self, topic, msg, retained):
        kind = topic.rsplit("/", 1)[-1]
        try:
            j = json.loads(bytes(msg))
            if not isinstance(j, dict):
                raise ValueError("not an object")
            if kind == "ack":
                self._on_ack(j["boot"], j["seq"], j.get("anchor"))
            elif kind == "cmd":
                import cmd
                cmd.handle(self, j)
        except (ValueError, KeyError, TypeError) as e:
            self.bad_cmd += 1
            log("%s: bad message %r (%r)" % (kind, bytes(msg[:80]), e))

    def _on_ack(self, boot, seq, anchor):
        if not (isinstance(boot, int) and isinstance(seq, int)):
            raise ValueError("ack needs integer boot and seq")
        if self.cfg["ack"] == "auto" and not self.e2e:
            log("ack: end-to-end acks seen, the outbox follows them from now")
            self.e2e = True
        if boot == self.boot and isinstance(anchor, int) and self.hal.epoch_ms() is None:
            self.anchor = anchor
        # Only an ack that moves counts as progress: the gateway's seq is its contiguous mark,
        # so an ack that stays put while readings wait means a hole there (lost on the way);
        # the ack timeout then sends again from seq + 1 (_ticker).
        gone = self.ob.ack(boot, seq)
        if gone:
            self._ack_t = self.hal.ticks_ms()
            if boot == self.boot:
                self.acked_e2e += gone
            log("ack boot %d seq %d: %d readings done, %d in outbox" % (boot, seq, gone, self.ob.count))
        self._ev = True

    # ---- sending ----
    def _status(self, state, extra=""):
        if self.serial:
            return ('{"v":1,"kind":"status","site":"%s","dev":"%s","state":"%s","boot":%d,'
                    '"board":"%s"%s}' % (self.cfg["site"], self.dev, state, self.boot,
                                         self.board, extra)).encode()
        return ('{"state":"%s"%s,"boot":%d,"board":"%s"}' % (
            state, extra, self.boot, self.board)).encode()

    async def _online(self):
        if self.e2e:
            self.ob.rewind()  # the broker may have lost what it PUBACKed: send it again
            self._ack_t = self.hal.ticks_ms()
        await self.mq.publish(self.t_status, self._status("online"), 1, True)
        self._ev = True

    def diag(self):
        d = {}  # type: dict
        self.hal.diag(d)
        now = self.hal.ticks_ms()
        if time.ticks_diff(now, self._largest[1]) >= _LARGEST_EVERY_MS:
            self._largest = (_largest_block(), now)
        d["heap_largest"] = self._largest[0]
        d["outbox"] = self.ob.count
        d["dropped"] = self.ob.dropped
        d["reconnects"] = max(0, self.mq.connects - 1)
        d["uptime_ms"] = self.uptime()
        if self.bad_cmd:
            d["bad_cmd"] = self.bad_cmd
        for s in self.samplers:
            if s.err:
                d["e_" + s.name] = s.err
            if self._flush and s.errors:
                d["n_err_" + s.name] = s.errors
        return d

    def _due(self):
        ob = self.ob
        if not ob.unsent:
            return -1
        if self._flush or ob.unsent >= self.cfg["batch_max"] or not self._sampling():
            return 0
        return max(0, _LINGER_MS - time.ticks_diff(self.hal.ticks_ms(), self._first_t))

    def finished(self):
        if self._sampling():
            return False
        if self.e2e:
            return self.ob.count == 0
        return self.ob.unsent == 0

    # Sleeps ms, or less once _ev is set.
    async def _nap(self, ms):
        t = time.ticks_ms()
        while not self._ev:
            left = ms - time.ticks_diff(time.ticks_ms(), t)
            if left <= 0:
                return
            await asyncio.sleep_ms(min(left, _STEP_MS))

    async def _publisher(self):
        ob = self.ob
        while True:
            if self.limit and self.finished():
                self._done = True
                return
            due = self._due()
            if due:
                self._ev = False
                await self._nap(1000 if due < 0 else due)
                if due > 0 and self._due() > 0:
                    self._first_t = time.ticks_add(self.hal.ticks_ms(), -_LINGER_MS)
                continue
            await self.mq.wait_connected()
            d = self.diag()
            self._flush = False
            start = ob.cursor
            a, b, n, nxt = self.env.build(ob, self.cfg["batch_max"], self.boot, self.uptime(), d)
            if not n:
                ob.rewind()
                continue
            env = memoryview(bufs.env)[a:b]  # stays untouched until its PUBACK
            boot, last = self.env.boot, self.env.last
            gc.collect()
            self._heap()
            pid = await self.mq.publish(self.t_tel, env, 1, False)
            await self.mq.wait_ack(pid)
            if ob.cursor == ob.head:
                self._ack_t = self.hal.ticks_ms()
            ob.advance(start, nxt, n)
            if self.cfg["ack"] == "puback":
                ob.ack(boot, last)  # PUBACK is the end of the line here
            self.sent += 1
            log("tx boot %d seq ..%d (%d readings, %d B) %s" % (
                boot, last, n, b - a, "handed over" if self.e2e else "acked"))

    def _heap(self):
        a = gc.mem_alloc()
        if a > self.peak:
            self.peak = a

    # Watchdog, the ack timeout, the crash counter, a pending reboot.
    async def _ticker(self):
        t0 = self.hal.ticks_ms()
        stable = False
        while True:
            self.hal.feed()
            now = self.hal.ticks_ms()
            ob = self.ob
            if self.e2e and ob.cursor != ob.head and ob.count and \
                    time.ticks_diff(now, self._ack_t) > self.cfg["ack_timeout_ms"]:
                log("ack: stuck below seq %d for %d ms, sending again from the oldest unacked"
                    % (ob.last[1], self.cfg["ack_timeout_ms"]))
                ob.rewind()
                self._ack_t = now
                self._ev = True
            if not stable and time.ticks_diff(now, t0) > _STABLE_MS:
                stable = True
                crash_set(0)
            if self._reboot:
                crash_set(0)
                self.hal.reboot()
            await asyncio.sleep_ms(250)

    async def _guard(self, coro):
        try:
            await coro
        except Exception as e:  # any task dying stops the board with the reason
            sys.print_exception(e)
            self.error = e
            self._done = True

    async def _sample_all(self, ss):
        self._stasks = [asyncio.create_task(s.run(self.record)) for s in ss]
        for t in self._stasks:
            await t
        self._sampled_all = True
        self._ev = True
        log("sampled %d readings, sampling done" % self.seq)

    async def run(self):
        self._sampled_all = not self.samplers
        tasks = [asyncio.create_task(self._guard(self.mq.run())),
                 asyncio.create_task(self._guard(self._publisher())),
                 asyncio.create_task(self._guard(self._ticker()))]
        if self.samplers:
            tasks.append(asyncio.create_task(self._guard(self._sample_all(self.samplers))))
        else:
            log("no sensors: sending the outbox only")
        if self.sleepy:
            import sleeper  # deep-sleep boards only: always-on boards never load its code
            tasks.append(asyncio.create_task(self._guard(sleeper.run(self))))
        while not self._done:
            await asyncio.sleep_ms(_STEP_MS)
        if self.error is None:
            await self.mq.wait_idle()
        for t in tasks + self._stasks:
            if not t.done():
                t.cancel()
        await self.mq.disconnect()


# Runs the app; returns the process exit code (runner.boot did the boot checks).
def main(cfg, hal, boot):
    app = App(cfg, hal, boot)
    print("Sen firmware %s device=%s boot=%d board=%s site=%s port=%s" % (
        VERSION, app.dev, boot, app.board, cfg["site"], sys.platform))
    log("%s %s:%d interval %d ms batch %d max_readings %d outbox %d (%s) reset %s" % (
        cfg["transport"], cfg["host"], cfg["port"], cfg["interval_ms"], cfg["batch_max"],
        cfg["max_readings"], app.ob.count, "ram" if cfg["outbox_ram"] else "flash", hal.reset))
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: no DISCONNECT, so the broker sends the will
        crash_set(0)
        print("Sen interrupted: %d readings sampled, %d in outbox" % (app.seq, app.ob.count))
        return 130
    if app.error is not None:
        print("Sen stopped: %r" % (app.error,))
        return 1
    crash_set(0)
    ob = app.ob
    print("Sen done: %d readings acked in %d envelopes, dropped %d, boot %d, peak heap %d B"
          % (app.seq - (ob.count if app.e2e else ob.unsent), app.sent, ob.dropped, boot, app.peak))
    return 0 if ob.dropped == 0 else 1


def _serial():
    from seriallink import SerialLink
    return SerialLink(log)


def _mqtt(cfg, dev, base, hal):
    from mqtt import MQTTClient
    m = MQTTClient(dev, cfg["host"], cfg["port"], cfg["keepalive"], base + "status",
                   b'{"state":"offline"}', log)
    m.net_connect = hal.net_connect
    m.subs = [base + "ack", base + "cmd"]
    m.user = cfg["user"]
    m.password = cfg["bpass"]
    m.tls = cfg["tls"]
    m.ca = cfg["ca"]
    return m


def _largest_block():
    # MicroPython has no call for the largest free block: find it by trying (bisection).
    lo, hi = 0, gc.mem_free()
    while hi - lo > 256:
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
            del b
            lo = mid
        except MemoryError:
            hi = mid
    return lo
