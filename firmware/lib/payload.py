# Sen firmware: payload v1 encoding (the contract: DESIGN.md at the repo root, "Payload", and
# tests/contract). Readings are encoded once, when sampled, and an envelope is their
# concatenation: no per-reading dicts wait in RAM.
import gc
import json
import time

from micropython import const

_LARGEST_EVERY_MS = const(30000)
_RES = const(240)  # room kept at the front of the buffer for the envelope header (224 at most)
# The envelope's d on a cellular board: one dict for the board's life, its table made when
# cellular.py loads (17 slots for its 14 keys) and emptied, never freed, at each envelope. Built
# afresh, its table grew 5 -> 11 -> 17 slots at every envelope, and in a heap in pieces the
# 272 B of the last step were sometimes not found (firmware/CELLULAR.md, Memory). None: a WiFi
# or serial board's d is built afresh (kept, its table cost a serial board its runs at 56K).
_D = None  # type: dict | None


# One reading as JSON bytes; ts (Unix ms) when the clock is synced, else up (uptime ms); s:
# the sensor's name (left out when None). Non-finite values are left out (the gateway rejects
# a message holding one); returns None when nothing is left.
def reading(seq, ts, up, m, s=None):
    mm = {}
    for k in m:
        v = m[k]
        if type(v) is int or type(v) is float and v - v == 0:  # not bool, inf or nan
            mm[k] = v
    if mm:
        return ('{"seq":%d,"%s":%d,%s"m":%s}' % (seq, "up" if ts is None else "ts",
                                                 up if ts is None else ts,
                                                 '"s":"%s",' % s if s else "",
                                                 json.dumps(mm, separators=(",", ":")))).encode()


# Builds one envelope in buf from the outbox's unsent readings: one boot per envelope (a
# replay keeps each reading's original boot and seq). Readings are copied in first, after
# _RES bytes, and the header is put just before them; fid: the flash id (bootcount), sent as 0
# for boots up to fid0 (run by firmware older than fid: bootcount.FID0); site
# is None over MQTT (the topic carries it). Returns (start, end, n, next offset, the envelope's boot, its last seq);
# n = 0 when nothing is unsent.
def build(outbox, buf, bmax, boot, up, diag, dev, fid, board, site, fid0=0):
    # the diagnostics' JSON and the header are copied into buf from their str (a memoryview of
    # a str is its UTF-8 bytes): no second, encoded copy of either in the heap
    t = memoryview(json.dumps(diag, separators=(",", ":")))  # type: ignore[arg-type]  # a buffer here
    k = len(t) + 7  # '],"d":' t '}'
    nxt = outbox.take(memoryview(buf)[_RES:len(buf) - k], bmax)
    n = outbox.w_n
    if not n:
        return 0, 0, 0, nxt, 0, 0
    b, i, last = outbox.w_boot, _RES + outbox.w_len, outbox.w_seq
    if b != boot:
        up = outbox.w_up  # an older boot's envelope: the up of its last reading
    # "lo": the oldest live seq of this boot; "ob": the oldest boot still in the outbox,
    # when older than b (tests/contract/ack.md)
    lo = outbox.oldest(b)
    ob = outbox.w_boot
    h = memoryview('{"v":1,%s"dev":"%s","fid":%d,"boot":%d,"up":%d,"lo":%d%s,"board":"%s","r":[' % (
        '"site":"%s",' % site if site else "", dev, fid if b > fid0 else 0, b, up, lo,
        ',"ob":%d' % ob if ob < b else "", board))  # type: ignore[arg-type]  # a buffer here
    a = _RES - len(h)
    buf[a:_RES] = h
    buf[i:i + 6] = b'],"d":'
    buf[i + 6:i + k - 1] = t
    buf[i + k - 1] = 125  # "}"
    return a, i + k, n, nxt, b, last


# The envelope's d: the diagnostics of the App a (its hal, outbox, link, samplers). The largest
# free block is looked for every _LARGEST_EVERY_MS.
def diag(a):
    d = _D
    if d is None:
        d = {}
    while d:  # a key deleted keeps its slot: the table stays
        d.popitem()
    hal = a.hal
    hal.diag(d)
    now = time.ticks_ms()
    if a._largest_t is None or time.ticks_diff(now, a._largest_t) >= _LARGEST_EVERY_MS:
        # MicroPython has no call for the largest free block: find it by trying (bisection)
        lo, hi = 0, gc.mem_free()
        while hi - lo > 256:
            mid = (lo + hi) // 2
            try:
                b = bytearray(mid)
                del b
                lo = mid
            except MemoryError:
                hi = mid
        a._largest = lo
        a._largest_t = now
    d["heap_largest"] = a._largest
    d["outbox"] = a.ob.count
    d["dropped"] = a.ob.dropped
    d["reconnects"] = max(0, a.mq.connects - 1)
    getattr(a.mq, "diag", id)(d)  # the cellular transport's rssi, operator, cell, bytes
    d["uptime_ms"] = a.uptime()
    if a.bad_cmd:
        d["bad_cmd"] = a.bad_cmd
    for s in a.samplers:
        if s.err:
            d["e_" + s.name] = s.err
        if a._flush and s.errors:
            d["n_err_" + s.name] = s.errors
    return d
