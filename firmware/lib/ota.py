# OTA receiver, the board's side of DESIGN.md "OTA" as the running app loads it (at the first
# message of the ota topic; dropped when idle): a bundle's chunks go, in order, to sen_ota.bin
# on flash, and `at` (the bytes written) to sen_ota.json at least every 8 chunks, so a transfer
# resumes after a lost link or a reboot. Everything that needs heap is done at boot, before
# the app loads (otaboot.py): once the head (magic, manifest length, signature, manifest) is in,
# "chk" is set and the app reboots; otaboot checks the signature and the manifest, and only
# then are the files' bytes taken; once they are all in, "chk" again and a reboot: otaboot
# unpacks them into the inactive slot, each checked against its SHA-256, and marks it for
# trial. Here: no hash, no manifest, no buffer; the state is a small dict the app shares.
import os
import json
import struct
import binascii
import time
from log import crash_set, log
from micropython import const

_HEAD = const(76)  # magic 8, manifest length 4, signature 64
_MAX_MANIFEST = const(8192)
_SAVE_EVERY = const(8)  # chunks between saves of the transfer state
STATE = "sen_ota.json"
BIN = "sen_ota.bin"  # the bundle as received


# A message of the ota topic for the App app: to its receiver, made now if it has none (the
# app drops it, and this module, when tick() says it is idle).
def take(app, msg):
    if app.rx is None:
        app.rx = Receiver(app)
    if app.rx.chunk(msg):
        app._ota_pub = True


# Few functions, few names: this is loaded into a running app's heap (firmware/README.md, OTA).
class Receiver:
    # app: the App (its ota member is the transfer's state, {} before any OTA, which otaboot
    # put in the config: the app reports it, this fills it in place)
    def __init__(self, app):
        self.app = app
        self.st = app.ota
        self._n = 0  # chunks since the last save
        self._t = time.ticks_ms()  # the last chunk
        self._b = 0  # when the reboot for the boot step was first due

    # Called by the app's ticker: the reboot the update asks for ("chk": otaboot's boot step),
    # once its status is out (1 s after it was queued; lost, the next boot's says as much) and
    # a RAM outbox is empty (10 s at most). True: idle for 30 s, drop me.
    def tick(self, now):
        a = self.app
        if not self.st.get("chk"):
            return time.ticks_diff(now, self._t) > 30000
        if a._ota_pub:
            return False
        if not self._b:
            self._b = now
        t = time.ticks_diff(now, self._b)
        if t > 1000 and not (a.cfg["outbox_ram"] and a.ob.count) or t > 10000:
            log("ota: rebooting to %s (boot %d sampled %d readings, %d in the outbox)" % (
                "unpack the update" if self.st["of"] else "check its signature", a.boot, a.seq, a.ob.count))
            crash_set(0)
            a.hal.reboot()
        return False

    # The state to flash; with why, the transfer refused first. True (publish the status).
    def _end(self, why=None):
        s = self.st
        if why:
            log("ota: refused (%s)" % why)
            s["st"] = "refused"
            s["why"] = why
            s.pop("chk", None)
        self._n = 0
        with open(STATE + ".tmp", "w") as f:
            json.dump(s, f)
        os.rename(STATE + ".tmp", STATE)
        return True

    # One message of the ota topic (bytes or memoryview). Returns True when the status changed
    # in a way the sender must see (a new state, a gap, every 8 chunks): publish it then. With
    # "chk" in st the app reboots (otaboot has work).
    def chunk(self, msg):
        s = self.st
        self._t = time.ticks_ms()
        if len(msg) < 12 or bytes(msg[:4]) != b"SOTA":
            s and s.update(why="bad_chunk")
            return True
        tid = binascii.hexlify(msg[4:8]).decode()
        off = struct.unpack(">I", msg[8:12])[0]
        mine = s.get("id") == tid
        if off == 0xFFFFFFFF:
            return mine and s["st"] == "recv" and self._end("aborted")
        if s.get("st") in ("ready", "trial"):
            return False  # an update waits for its reboot or its trial: nothing else until then
        if not mine or s["st"] != "recv":
            if off:
                return not mine  # not ours: the status tells the sender our id
            if mine:
                return False  # a transfer already over (refused, done...): not again
            s.clear()
            s.update(id=tid, ver="", st="recv", at=0, of=0)
            if self.app.cfg["ota_pub"] is None:
                return self._end("no_key")
        if s.get("chk"):
            return False  # the head or the files wait for the boot step
        at = s["at"]
        if off != at:
            return off > at  # a gap: ask for `at` again; a duplicate: drop it
        data = msg[12:]
        try:
            if not data or (s["of"] and at + len(data) > s["of"]):
                s["why"] = "bad_chunk"
                return True
            if "n" not in s and at + len(data) >= 12:  # the magic and the manifest's length
                b = b""
                if at:
                    with open(BIN, "rb") as f:
                        b = f.read(at)
                b += bytes(data[:12 - at])
                n = struct.unpack(">I", b[8:12])[0]
                if b[:8] != b"SENOTA1\n":
                    return self._end("bad_magic")
                if n < 2 or n > _MAX_MANIFEST:
                    return self._end("bad_manifest")
                s["n"] = n
            if not s["of"] and "n" in s:
                data = data[:_HEAD + s["n"] - at]  # no file byte before the head is checked
            with open(BIN, "r+b" if at else "wb") as f:
                f.seek(at)
                f.write(data)
        except OSError as e:  # the flash is full or failing: the transfer cannot go on
            return self._end("no_space" if e.args and e.args[0] == 28 else "flash")
        s["at"] = at = at + len(data)
        if at == s["of"] or not s["of"] and at == _HEAD + s.get("n", -1):
            s["chk"] = 1  # the head is in, or the whole bundle: to the boot step
            return self._end()
        self._n += 1
        return self._n >= _SAVE_EVERY and self._end()
