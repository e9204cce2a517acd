# Sen firmware: payload v1 encoding (see DESIGN.md, "Payload"). Readings are encoded once,
# when sampled, and an envelope is their concatenation: no per-reading dicts wait in RAM.
import json

from micropython import const

_SEP = (",", ":")
try:
    json.dumps(0, separators=_SEP)
    _COMPACT = True
except TypeError:  # older ports: no separators argument
    _COMPACT = False


def dumps(o):
    if _COMPACT:
        return json.dumps(o, separators=_SEP)
    return json.dumps(o)


def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v \
        and v != float("inf") and v != float("-inf")


# One reading as JSON bytes; ts (Unix ms) when the clock is synced, else up (uptime ms).
# Non-finite values are left out (the gateway rejects a message holding one); returns None
# when nothing is left.
def reading(seq, ts, up, m):
    mm = {}
    for k in m:
        if _finite(m[k]):
            mm[k] = m[k]
    if not mm:
        return None
    if ts is not None:
        return ('{"seq":%d,"ts":%d,"m":%s}' % (seq, ts, dumps(mm))).encode()
    return ('{"seq":%d,"up":%d,"m":%s}' % (seq, up, dumps(mm))).encode()


_RES = const(224)  # room kept at the front of the buffer for the envelope header


def _put(buf, i, data):
    buf[i:i + len(data)] = data
    return i + len(data)


# Builds one envelope in buf from the outbox's unsent readings: one boot per envelope (a
# replay keeps each reading's original boot and seq). Readings are copied in first, after
# _RES bytes, and the header is put just before them. Returns (start, end, n, next offset).
class Builder:
    def __init__(self, buf, dev, board, site):
        self.buf = buf
        self.dev = dev
        self.board = board
        self.site = site  # None over MQTT; the serial frame carries it
        self.boot = 0
        self.up = 0
        self.n = 0
        self.i = 0
        self.room = 0
        self.bmax = 0
        self.first = 0
        self.last = 0

    def _take(self, boot, seq, up, enc):
        if self.n and (boot != self.boot or self.n >= self.bmax
                       or self.i + len(enc) + 1 > self.room):
            return False
        if not self.n:
            self.boot = boot
            self.first = seq
        else:
            self.buf[self.i] = 44  # ","
            self.i += 1
        self.i = _put(self.buf, self.i, enc)
        self.n += 1
        self.last = seq
        if up > self.up:
            self.up = up
        return True

    def build(self, outbox, bmax, boot, up, diag):
        tail = ('],"d":%s}' % dumps(diag)).encode()
        self.n = 0
        self.up = 0
        self.i = _RES
        self.bmax = bmax
        self.room = len(self.buf) - len(tail)
        nxt = outbox.scan(outbox.cursor, self._take)
        if not self.n:
            return 0, 0, 0, nxt
        env_up = up if self.boot == boot else self.up
        site = '"site":"%s",' % self.site if self.site else ""
        lo, ob = outbox.lo(self.boot, self.first)
        ob = ',"ob":%d' % ob if ob < self.boot else ""  # older boots still in the outbox
        h = ('{"v":1,%s"dev":"%s","boot":%d,"up":%d,"lo":%d%s,"board":"%s","r":[' % (
            site, self.dev, self.boot, env_up, lo, ob, self.board)).encode()
        start = _RES - len(h)
        _put(self.buf, start, h)
        end = _put(self.buf, self.i, tail)
        return start, end, self.n, nxt
