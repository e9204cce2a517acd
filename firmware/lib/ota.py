# OTA receiver, the board's side of DESIGN.md "OTA" as the running app loads it (at the first
# message of the ota topic; dropped when idle): a bundle's chunks go, in order, to sen_ota.bin
# on flash, and `at` (the bytes written) to sen_ota.json at least every 8 chunks, so a transfer
# resumes after a lost link or a reboot. Everything that needs heap is done at boot, before
# the app loads (otaboot.py): once the head (magic, manifest length, signature, manifest) is in,
# "chk" is set and the app reboots; otaboot checks the signature and the manifest, and only
# then are the files' bytes taken; once they are all in, "chk" again and a reboot: otaboot
# unpacks them into the inactive slot, each checked against its SHA-256, and marks it for
# trial. Here: no hash, no manifest, no chunk in RAM: the MQTT client hands a message over in
# pieces of 128 bytes as it reads them (mqtt.py), each written to flash at once; few functions,
# few names, no coroutine: this is loaded into a running app's heap (firmware/README.md, OTA).
# The transfer's state is the app's ota dict (otaboot put it in the config; the status
# reports it; filled here in place); the message underway is this module's.
import os
import sys
import json
import struct
import time
from binascii import hexlify
from log import crash_set, log

_k = -1  # data bytes of the message underway still to take; -1: none (its pieces dropped)
_at = 0  # where its next data byte goes in the bundle
_f = None  # sen_ota.bin while they are written
_n = 0  # chunks since the last save of the state
_t = time.ticks_ms()  # the last message
_b = 0  # when the reboot for the boot step was first due


# Called by the app a's ticker: the reboot the update asks for ("chk": otaboot's boot step),
# once its status is out (1 s after it was queued; lost, the next boot's says as much) and a RAM
# outbox is empty (10 s at most). True: idle for 30 s, drop this module.
def tick(a, now):
    global _b
    s = a.ota
    if not s.get("chk"):
        return time.ticks_diff(now, _t) > 30000
    if a._ota_pub:
        return False
    _b = _b or now
    t = time.ticks_diff(now, _b)
    if t > 1000 and not (a.cfg["outbox_ram"] and a.ob.count) or t > 10000:
        log("ota: rebooting to %s (boot %d sampled %d readings, %d in the outbox)" % (
            "unpack the update" if s["of"] else "check its signature", a.boot, a.seq, a.ob.count))
        crash_set(0)
        a.hal.reboot()
    return False


# The state s to flash (the message underway, if any, is dropped); with why, the transfer
# refused first (an OSError of the flash: "no_space" when it is full, else "flash"). True
# (publish the status).
def _end(s, why=None):
    global _n, _k
    if isinstance(why, OSError):
        why = "no_space" if why.args and why.args[0] == 28 else "flash"
    if why:
        log("ota: refused (%s)" % why)
        s["st"] = "refused"
        s["why"] = why
        s.pop("chk", None)
    _n = 0
    _k = -1
    _close()
    with open("sen_ota.json.tmp", "w") as f:
        json.dump(s, f)
    os.rename("sen_ota.json.tmp", "sen_ota.json")
    return True


def _close():
    global _f
    if _f:
        _f.close()
        _f = None


# A piece p of a message of the ota topic for the app a: pos, where it starts in the message;
# left, the bytes after it (a whole message: 0 and 0). The status goes out when the sender must
# see it (a new state, a gap, every 8 chunks); with "chk" in the state the app reboots (otaboot
# has work).
def take(a, p, pos=0, left=0):
    global _k, _at, _n, _t
    s = a.ota
    try:
        if not pos:
            _close()  # a message cut short (a lost link): nothing of it counted
            _t = time.ticks_ms()
            _k = -1
            if _head(a, s, p, len(p) + left - 12):
                a._ota_pub = True
            _at = s.get("at", 0)
            p = p[12:]
        while _k > 0 and p:
            # before the head is checked, no byte past its end, nor past the manifest's length
            # until that is known
            c = min(_k, len(p), 76 + s["n"] - _at if "n" in s and not s["of"] else 12 - _at if _at < 12 else _k)
            if c <= 0:
                _k = 0
                break
            try:
                _f.write(p[:c])  # type: ignore[attr-defined]  # open here (_head)
            except OSError as e:  # the flash is full or failing: the transfer cannot go on
                a._ota_pub = _end(s, e)
                return
            p = p[c:]
            _at += c
            _k -= c
            if "n" not in s and _at >= 12:  # the magic and the manifest's length
                _f.seek(0)  # type: ignore[attr-defined]  # open here (_head)
                h = _f.read(12)  # type: ignore[attr-defined]  # open here (_head)
                _f.seek(_at)  # type: ignore[attr-defined]  # open here (_head)
                c = struct.unpack(">I", h[8:])[0]
                if h[:8] != b"SENOTA1\n" or c < 2 or c > 8192:
                    a._ota_pub = _end(s, "bad_magic" if h[:8] != b"SENOTA1\n" else "bad_manifest")
                    return
                s["n"] = c
        if left or _k < 0:
            return
        _close()
        _k = -1
        s["at"] = _at
        _n += 1
        if _at == s["of"] or not s["of"] and _at == 76 + s.get("n", -1):
            s["chk"] = 1  # the head is in, or the whole bundle: to the boot step
        if "chk" in s or _n >= 8:
            a._ota_pub = _end(s)
    except MemoryError:  # dropped (the sender sends it again), and this module with it: the app
        _k = -1  # needs the room more (firmware/README.md, OTA)
        _close()
        sys.modules.pop("ota", None)
        log("ota: out of memory, chunk dropped")


# A message's first piece p (its header), m the length of its data: sets _k (and opens the
# file) when the data is to be taken at `at`. True: publish the status.
def _head(a, s, p, m):
    global _k, _f
    if len(p) < 12 or p[:4] != b"SOTA":
        s and s.update(why="bad_chunk")
        return True
    tid = hexlify(p[4:8]).decode()
    off = struct.unpack(">I", p[8:12])[0]
    mine = s.get("id") == tid
    if off == 0xFFFFFFFF:
        return mine and s["st"] == "recv" and _end(s, "aborted")
    if s.get("st") in ("ready", "trial"):
        return False  # an update waits for its reboot or its trial: nothing else until then
    if not mine or s["st"] != "recv":
        if off:
            return not mine  # not ours: the status tells the sender our id
        if mine:
            return False  # a transfer already over (refused, done...): not again
        s.clear()
        s.update(id=tid, ver="", st="recv", at=0, of=0)
        if a.cfg["ota_pub"] is None:
            return _end(s, "no_key")
    if s.get("chk"):
        return False  # the head or the files wait for the boot step
    at = s["at"]
    if off != at:
        return off > at  # a gap: ask for `at` again; a duplicate: drop it
    if m < 1 or s["of"] and at + m > s["of"]:
        s["why"] = "bad_chunk"
        return True
    try:
        _f = open("sen_ota.bin", "r+b" if at else "w+b")
        _f.seek(at)
    except OSError as e:
        return _end(s, e)
    _k = m
    return False
