# Sen firmware application: sensors sample into the outbox (flash or RAM), the publisher
# sends the outbox's readings as payload v1 envelopes (MQTT QoS1 or serial frames), and a
# reading leaves the outbox only when the gateway's end-to-end ack covers it (ack "e2e" and
# "auto"; "puback": the broker's PUBACK is enough). "auto" differs from "e2e" only until an
# ack is first seen: no resend on ack timeout, and max_readings counts PUBACKs.
# OTA (DESIGN.md, OTA): the ota topic's chunks go to ota.py (piece by piece), loaded at the first one and
# dropped when idle; the status carries ver and the transfer's state; a version on trial
# confirms itself at its first end-to-end ack, or reboots when trial_ms pass without one.
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
_STEP_MS = const(20)  # how often a waiting task looks at its flag
OUTBOX = "sen_outbox.bin"


class App:
    def __init__(self, cfg, hal, boot):
        self.cfg = cfg
        self.hal = hal
        self.boot = boot
        self.dev = dev = hal.dev
        base = "sen/v1/%s/%s/" % (cfg["site"], dev)
        self.t_tel = base + "telemetry"
        self.t_status = base + "status"
        self.serial = cfg["transport"] == "serial"
        self.ob = ob = Outbox(None if cfg["outbox_ram"] else OUTBOX, cfg["outbox_max"])
        if ob.torn:
            log("outbox: cut %d B of a torn record" % ob.torn)
        self.seq = self.sent = self.peak = self.bad_cmd = self._last_ts = self._up = self._foreign = 0
        self.e2e = cfg["ack"] == "e2e"  # end-to-end acks rule the outbox
        self.anchor = None  # gateway's clock anchor for this boot (ts = anchor + uptime)
        self._up_t = time.ticks_ms()
        # a reading, an ack, a connect: flags polled every _STEP_MS, not asyncio Events (no Event objects,
        # no timeout task per wait, and a serial board never loads asyncio's event and funcs modules)
        self._ev = self._flush = self._reboot = self._done = False
        self._largest = 0
        self._first_t = self._ack_t = time.ticks_ms()
        self._largest_t = None  # when payload.diag last looked for the largest free block
        self.error = None
        # OTA: the transfer's state (otaboot.py; ota.py, the receiver, fills it), a status to publish
        self.ota = cfg["ota"]
        self._trial = cfg["trial"]
        self._ota_pub = False
        self.samplers = ss = sensors.build(cfg["sensors"], hal, log)
        self._sampled_all = not ss
        if self.serial:
            from seriallink import SerialLink
            m = SerialLink(log)
        else:
            MQTTClient = __import__("cellular" if cfg["transport"] == "cellular" else "mqtt").MQTTClient
            c = MQTTClient(dev, cfg["host"], cfg["port"], cfg["keepalive"], base + "status",
                           b'{"state":"offline"}', log)
            c.net_connect = hal.net_connect
            c.big = base + "ota"  # its chunks come in pieces, each straight to flash (ota.py)
            c.subs = [base + "ack", base + "cmd", c.big]
            c.user, c.password = cfg["user"], cfg["bpass"]
            c.tls = cfg["tls"]
            c.ca = cfg["ca"]
            m = c  # the same interface as SerialLink (c is Any: mqtt or cellular)
        m.on_connect = self._online
        m.on_message = self._on_message
        self.mq = m

    # Uptime in ms, summed from ticks deltas so it survives the ticks wrap (~12 days on ESP32).
    def uptime(self):
        t = time.ticks_ms()
        self._up += time.ticks_diff(t, self._up_t)
        self._up_t = t
        return self._up

    # A sampler (its name s) hands over one reading's metrics; False: the board wants no more readings.
    def record(self, s, m):
        limit = self.cfg["max_readings"]
        if limit and self.seq >= limit:
            return False
        up = self.uptime()
        ts = self.hal.epoch_ms()
        if ts is None and self.anchor is not None:
            ts = self.anchor + up
        if ts is not None:  # strictly increasing: two readings never share a point in InfluxDB
            ts = max(ts, self._last_ts + 1)
            self._last_ts = ts
        enc = payload.reading(self.seq + 1, ts, up, m, s)
        if enc is None:
            return True
        ob = self.ob
        if not ob.unsent:
            self._first_t = time.ticks_ms()
        # a reading too big for a record keeps no seq (a hole in its boot's seqs would hold the gateway's ack)
        if not ob.push(self.boot, self.seq + 1, up, enc):
            log("reading too big (%d B), skipped" % len(enc))
            return True
        self.seq += 1
        self._ev = True
        return self.cfg["mode"] != "deep_sleep" and not (limit and self.seq >= limit)

    # ack and cmd from the gateway (JSON); a bad one is counted (bad_cmd) and logged. ota: a
    # chunk, or a piece of one (pos: where it starts, left: the bytes after it; mqtt.py).
    def _on_message(self, topic, msg, retained, pos=0, left=0):
        kind = topic[topic.rfind("/") + 1:]
        if kind == "ota":  # an update's chunk, whole or a piece of it (mqtt.py): to ota.py, loaded now if it is not
            try:
                return __import__("ota").take(self, msg, pos, left)
            except MemoryError:  # dropped: the sender sends it again
                sys.modules.pop("ota", None)
                return log("ota: out of memory (%d B free), chunk dropped" % gc.mem_free())
        try:
            j = json.loads(bytes(msg))
            if not isinstance(j, dict):
                raise ValueError("not an object")
            if kind == "cmd":
                import cmd
                cmd.handle(self, j)
                return
            boot, seq, anchor = j["boot"], j["seq"], j.get("anchor")
            if not (isinstance(boot, int) and isinstance(seq, int)):
                raise ValueError("ack needs integer boot and seq")
            f = j.get("fid", self.cfg["fid"])  # without fid (a gateway older than fid): ours
            # another flash's (an erased or replaced board's, retained); fid 0 is ours for boots
            if f != self.cfg["fid"] and not (f == 0 and boot <= self.cfg.get("fid0", 0)):  # before fid
                if f != self._foreign:  # logged once
                    self._foreign = f
                    log("ack: fid %r is another flash's: ignored" % (f,))
                return
            if self._trial and (boot == self.boot or not retained):  # live: the new version passed
                __import__("otaslot").confirm(self)
                del sys.modules["otaslot"]
            if not self.e2e and self.cfg["ack"] == "auto":
                log("ack: end-to-end acks seen, the outbox follows them from now")
                self.e2e = True
            if boot == self.boot and isinstance(anchor, int) and self.hal.epoch_ms() is None:
                self.anchor = anchor
            # Only an ack that moves counts as progress: the gateway's seq is its contiguous
            # mark, so an ack that stays put while readings wait means a hole there (lost on
            # the way); the ack timeout then sends again from seq + 1 (run).
            gone = self.ob.ack(boot, seq)
            if gone:
                self._ack_t = time.ticks_ms()
                log("ack boot %d seq %d: %d readings done, %d in outbox"
                    % (boot, seq, gone, self.ob.count))
            self._ev = True
        except (ValueError, KeyError, TypeError) as e:
            self.bad_cmd += 1
            log("%s: bad message %r (%r)" % (kind, bytes(msg[:80]), e))

    # The retained status message ("online", "sleeping"); extra: more JSON members. It carries
    # the application's version (ver) and, from the first OTA on, the transfer's state (ota).
    def status(self, state, extra=""):
        c = self.cfg
        s = self.ota
        if s:
            extra += ',"ota":{"id":"%s","ver":"%s","st":"%s","at":%d,"of":%d%s}' % (
                s["id"], s["ver"], s["st"], s["at"], s["of"], ',"why":"%s"' % s["why"] if s.get("why") else "")
        if self.serial:
            return ('{"v":1,"kind":"status","site":"%s","dev":"%s","state":"%s","boot":%d,'
                    '"board":"%s","ver":"%s"%s}' % (c["site"], self.dev, state, self.boot, c["board"],
                                                    c["ver"], extra)).encode()
        return ('{"state":"%s","ver":"%s"%s,"boot":%d,"board":"%s"}' % (
            state, c["ver"], extra, self.boot, c["board"])).encode()

    async def _online(self):
        if self.e2e:
            self.ob.rewind()  # the broker may have lost what it PUBACKed: send it again
            self._ack_t = time.ticks_ms()
        await self.mq.publish(self.t_status, self.status("online"), 1, True)
        self._ev = True

    # Done: sampling is over and the outbox is empty (e2e) or all handed over. With wait (ms,
    # deep sleep): also done once all is handed over and no ack came for that long.
    def finished(self, wait=-1):
        ob = self.ob
        return self._sampled_all and (not (ob.count if self.e2e else ob.unsent) or wait >= 0 and
                                      not ob.unsent and time.ticks_diff(time.ticks_ms(), self._ack_t) > wait)

    # cmd "reboot": the ticker (run) reboots once the handler has returned.
    def reboot(self):
        self._reboot = True

    # cmd "diag": every sensor samples now, and the next envelope goes at once, with the
    # error counters in its diagnostics.
    def flush(self):
        self._flush = self._ev = True
        for s in self.samplers:
            s.wake = True

    async def _publisher(self):
        ob, cfg, mq = self.ob, self.cfg, self.mq
        while not (cfg["max_readings"] and self.finished()):
            # wait for a full batch, a flush, the end of sampling, or the oldest reading
            # having lingered _LINGER_MS
            t = time.ticks_ms()
            due = -1
            if ob.unsent:
                due = 0 if self._flush or ob.unsent >= cfg["batch_max"] or self._sampled_all \
                    else max(0, _LINGER_MS - time.ticks_diff(t, self._first_t))
            if due:
                self._ev = False
                while not self._ev and time.ticks_diff(time.ticks_ms(), t) < (due if due > 0 else 1000):
                    await asyncio.sleep_ms(_STEP_MS)
                if due > 0 and not self._ev:  # lingered long enough: it goes now
                    self._first_t = time.ticks_add(time.ticks_ms(), -_LINGER_MS)
                continue
            await mq.wait_connected()
            d = payload.diag(self)
            self._flush = False
            start = ob.cursor
            a, b, n, nxt, boot, last = payload.build(ob, bufs.env, cfg["batch_max"], self.boot, self.uptime(), d, self.dev,
                                                     cfg["fid"], cfg["board"], self.serial and cfg["site"], cfg.get("fid0", 0))
            if not n:
                ob.rewind()
                continue
            gc.collect()
            self.peak = max(self.peak, gc.mem_alloc())
            # the envelope stays untouched in bufs.env until its PUBACK
            await mq.wait_ack(await mq.publish(self.t_tel, memoryview(bufs.env)[a:b], 1, False))
            if ob.cursor == ob.head:
                self._ack_t = time.ticks_ms()
            ob.advance(start, nxt, n)
            if cfg["ack"] == "puback":
                ob.ack(boot, last)  # PUBACK is the end of the line here
            self.sent += 1
            log("tx boot %d seq ..%d (%d readings, %d B) %s" % (
                boot, last, n, b - a, "handed over" if self.e2e else "acked"))
        self._done = True

    # A task that dies stops the board with the reason (asyncio's exception handler).
    def _crash(self, loop, ctx):
        e = ctx["exception"]
        sys.print_exception(e)
        self.error = e
        self._done = True

    # The tasks: the transport, the publisher, one sampler per sensor (and deep sleep); this
    # loop is the ticker: watchdog, end of sampling, ack timeout, crash counter, reboot.
    async def run(self):
        hal, ob, cfg = self.hal, self.ob, self.cfg
        asyncio.get_event_loop().set_exception_handler(self._crash)
        tasks = [asyncio.create_task(self.mq.run()), asyncio.create_task(self._publisher())]
        st = [asyncio.create_task(s.run(self.record)) for s in self.samplers]
        if not st:
            log("no sensors: sending the outbox only")
        if cfg["mode"] == "deep_sleep":
            import sleeper  # deep-sleep boards only: always-on boards never load its code
            tasks.append(asyncio.create_task(sleeper.run(self)))
        t0 = time.ticks_ms()
        stable = False
        while not self._done:
            hal.feed()
            now = time.ticks_ms()
            if not self._sampled_all:  # a plain loop: a generator here was garbage every tick
                for t in st:
                    if not t.done():
                        break
                else:
                    self._sampled_all = self._ev = True
                    log("sampled %d readings, sampling done" % self.seq)
            if self.e2e and ob.cursor != ob.head and ob.count and \
                    time.ticks_diff(now, self._ack_t) > cfg["ack_timeout_ms"]:
                log("ack: stuck below seq %d for %d ms, sending again from the oldest unacked"
                    % (ob.last[1], cfg["ack_timeout_ms"]))
                ob.rewind()
                self._ack_t = now
                self._ev = True
            if not stable and time.ticks_diff(now, t0) > _STABLE_MS:
                stable = True
                crash_set(0)
            if self._reboot:
                crash_set(0)
                hal.reboot()
            if self._trial and time.ticks_diff(now, t0) > cfg["trial_ms"]:  # its boots are counted
                log("ota: no end-to-end ack within %d ms: rebooting (boot %d sampled %d readings)" % (
                    cfg["trial_ms"], self.boot, self.seq))
                crash_set(0)
                hal.reboot()
            if self._ota_pub and self.mq.connected:
                self._ota_pub = False
                await self.mq.publish(self.t_status, self.status("online"), 1, True)
            r = sys.modules.get("ota")
            if r and r.tick(self, now):  # idle: its code back to the heap
                del sys.modules["ota"]
            await asyncio.sleep_ms(_STEP_MS)
        if self.error is None:
            await self.mq.wait_idle()
        for t in tasks + st:
            if not t.done():
                t.cancel()
        await self.mq.disconnect()
