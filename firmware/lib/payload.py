# Sen firmware: payload v1 encoding (see DESIGN.md, "Payload"). Readings are encoded once,
# when sampled, and an envelope is their concatenation: no per-reading dicts wait in RAM.
import json

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


def _put(buf, i, data):
    buf[i:i + len(data)] = data
    return i + len(data)


# Writes one envelope into buf (bufs.env, at most 4 KiB) from up to batch_max readings
# of pending, oldest first. Returns (bytes used, number of readings, last seq).
def envelope(buf, dev, boot, up, board, pending, batch_max, diag):
    tail = ('],"d":%s}' % dumps(diag)).encode()
    i = _put(buf, 0, ('{"v":1,"dev":"%s","boot":%d,"up":%d,"board":"%s","r":[' % (
        dev, boot, up, board)).encode())
    room = len(buf) - len(tail)
    n = 0
    last = 0
    for k in range(min(batch_max, pending.count)):
        seq, enc = pending.peek(k)
        if i + len(enc) + 1 > room:
            break
        if n:
            buf[i] = 44  # ","
            i += 1
        i = _put(buf, i, enc)
        n += 1
        last = seq
    i = _put(buf, i, tail)
    return i, n, last
