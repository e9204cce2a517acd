# Sen firmware: payload v1 encoding (see DESIGN.md, "Payload"). Readings are encoded once,
# when sampled, and an envelope is their concatenation: no per-reading dicts wait in RAM.
import json

from micropython import const

_RES = const(224)  # room kept at the front of the buffer for the envelope header
_ACK = const(1)  # outbox.walk() modes
_TAKE = const(2)


# One reading as JSON bytes; ts (Unix ms) when the clock is synced, else up (uptime ms).
# Non-finite values are left out (the gateway rejects a message holding one); returns None
# when nothing is left.
def reading(seq, ts, up, m):
    mm = {}
    for k in m:
        v = m[k]
        if type(v) is int or type(v) is float and v - v == 0:  # not bool, inf or nan
            mm[k] = v
    if mm:
        return ('{"seq":%d,"%s":%d,"m":%s}' % (seq, "up" if ts is None else "ts",
                                               up if ts is None else ts,
                                               json.dumps(mm, separators=(",", ":")))).encode()


# Builds one envelope in buf from the outbox's unsent readings: one boot per envelope (a
# replay keeps each reading's original boot and seq). Readings are copied in first, after
# _RES bytes, and the header is put just before them; site is None over MQTT (the topic
# carries it). Returns (start, end, n, next offset, the envelope's boot, its last seq);
# n = 0 when nothing is unsent.
def build(outbox, buf, bmax, boot, up, diag, dev, board, site):
    tail = ('],"d":%s}' % json.dumps(diag, separators=(",", ":"))).encode()
    r = outbox.walk(_TAKE, outbox.cursor, bmax, len(buf) - _RES - len(tail),
                    memoryview(buf)[_RES:])
    n = r[1]
    if not n:
        return 0, 0, 0, r[0], 0, 0
    b = r[2]
    # "lo": the oldest live seq of this boot; "ob": the oldest boot still in the outbox,
    # when older than b (tests/contract/ack.md)
    lo = outbox.walk(_ACK, outbox.head, b, -1, None)
    h = ('{"v":1,%s"dev":"%s","boot":%d,"up":%d,"lo":%d%s,"board":"%s","r":[' % (
        '"site":"%s",' % site if site else "", dev, b, up if b == boot else r[7], lo[4],
        ',"ob":%d' % lo[2] if lo[2] < b else "", board)).encode()
    a = _RES - len(h)
    buf[a:_RES] = h
    i = _RES + r[5]
    buf[i:i + len(tail)] = tail
    return a, i + len(tail), n, r[0], b, r[6]
