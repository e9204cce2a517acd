# OTA receiver, the board's side of DESIGN.md "OTA": a signed bundle's chunks go straight into
# the inactive slot; the manifest's signature is checked (ed25519) before a byte of a file is
# written, each file's SHA-256 as it streams in; resumable from the last chunk saved. When all
# files check out, the slot is marked for trial and st is "ready": the app is to reboot.
# Fixed buffers: one 512-byte read-back buffer, the hashes; files kept as (path, size, digest).
import os
import json
import struct
import hashlib
import binascii
import gc
import sys
from micropython import const
from otaslot import SLOTS, TRIES, slots, exists, write_json, rmtree, mkdirs, vt, prefix

_HEAD = const(76)  # magic 8, manifest length 4, signature 64
_MAX_MANIFEST = const(8192)
_SAVE_EVERY = const(8)  # chunks between saves of the transfer state
STATE = "sen_ota.json"


def _state(root):
    try:
        with open(root + STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Receiver:
    # pub: the 32-byte public key; board: this board's profile; running: the version it runs;
    # mpy: MicroPython's version "1.24.1"; root: the flash dir ("" on a board).
    def __init__(self, pub, board, running, mpy, root=""):
        self.pub, self.board, self.running, self.mpy, self.root = pub, board, running, mpy, root
        self.buf = bytearray(512)
        self.st = _state(root)  # what status reports: id, ver, st, at, of, why; {} before any OTA
        self.files = []  # [(path, size, sha256 digest)], once the head checked out
        self._h = None  # the running file's hash
        self._n = 0  # chunks since the last save
        s = self.st
        if not s:
            return
        if s["st"] in ("ready", "trial"):  # where did the update go since: boot.py and the app say
            sl = slots(root)
            if sl.get("try") == s["slot"]:
                s["st"] = "trial"
            elif sl.get("active") == s["slot"]:
                s["st"] = "done"
            else:
                s["st"] = "rolled_back"
                s["why"] = sl.get("why", "trial_failed")
        if s["st"] == "recv" and s["of"]:
            try:
                self._load()
            except Exception as e:
                self._refuse("bad_manifest", e)

    def _dir(self):
        return self.root + "app_" + self.st["slot"]

    def _tick(self):
        # a chunk taken: the state goes to flash (and the status out) every 8 of them
        self._n += 1
        if self._n < _SAVE_EVERY:
            return False
        self._save()
        return True

    def _save(self):
        self._n = 0
        write_json(self.root + STATE, self.st)

    def _refuse(self, why, detail=""):
        print("ota: refused (%s) %s" % (why, detail))
        self.st["st"] = "refused"
        self.st["why"] = why
        self.files = []
        self._h = None
        rmtree(self._dir())
        self._save()

    # The status member: ',"ota":{...}' or "" before any OTA.
    def status(self):
        if not self.st:
            return ""
        s = self.st
        return ',"ota":{"id":"%s","ver":"%s","st":"%s","at":%d,"of":%d%s}' % (
            s["id"], s["ver"], s["st"], s["at"], s["of"], ',"why":"%s"' % s["why"] if s.get("why") else "")

    # One message of the ota topic (bytes or memoryview). Returns True when the status changed
    # in a way the sender must see (a new state, a gap, every 8 chunks): publish it then.
    def chunk(self, msg):
        try:
            return self._chunk(msg)
        except OSError as e:  # the flash is full or failing: the transfer cannot go on
            self._refuse("no_space" if e.args and e.args[0] == 28 else "flash", e)
            return True

    def _chunk(self, msg):
        if len(msg) < 12 or bytes(msg[:4]) != b"SOTA":
            return self._bad("short or foreign message")
        tid = binascii.hexlify(msg[4:8]).decode()
        off = struct.unpack(">I", msg[8:12])[0]
        s = self.st
        if off == 0xFFFFFFFF:
            if s and s["id"] == tid and s["st"] == "recv":
                self._refuse("aborted")
                return True
            return False
        if s and s["st"] in ("ready", "trial"):
            return False  # an update waits for its reboot or its trial: nothing else until then
        if not s or s["id"] != tid or s["st"] != "recv":
            if off != 0:
                return not s or s["id"] != tid  # not ours: the status tells the sender our id
            if s and s["id"] == tid:
                return False  # a transfer already over (refused, ready...): not again
            self._start(tid)
            s = self.st
        at = s["at"]
        if off != at:
            return off > at  # a gap: ask for `at` again; a duplicate: drop it
        data = msg[12:]
        if not data or (s["of"] and at + len(data) > s["of"]):
            return self._bad("chunk past the end")
        if not s["of"]:
            return self._head(data)
        return self._body(data)

    def _bad(self, why):
        print("ota: bad chunk:", why)
        if self.st:
            self.st["why"] = "bad_chunk"
        return True

    def _start(self, tid):
        act = slots(self.root).get("active", "")
        self.st = {"id": tid, "ver": "", "st": "recv", "at": 0, "of": 0, "slot": "b" if act == "a" else "a"}
        self.files = []
        self._h = None
        rmtree(self._dir())
        os.mkdir(self._dir())
        self._save()

    # The head (magic, length, signature, manifest) goes to the slot's ota_head.bin; once whole
    # it is checked before any file byte is taken.
    def _head(self, data):
        s = self.st
        path = self._dir() + "/ota_head.bin"
        with open(path, "r+b" if s["at"] else "wb") as f:
            f.seek(s["at"])
            f.write(data)
        s["at"] += len(data)
        with open(path, "rb") as f:
            f.readinto(self.buf)
        b = self.buf
        if s["at"] >= 12:
            if bytes(b[:8]) != b"SENOTA1\n":
                self._refuse("bad_magic")
                return True
            n = struct.unpack(">I", b[8:12])[0]
            if n < 2 or n > _MAX_MANIFEST:
                self._refuse("bad_manifest", "length %d" % n)
                return True
            if s["at"] >= _HEAD + n:
                return self._check(n)
        return self._tick()

    def _check(self, n):
        import ed25519
        s = self.st
        path = self._dir() + "/ota_head.bin"
        rest = b""
        if os.stat(path)[6] > _HEAD + n:  # file bytes past the head: keep them apart
            with open(path, "rb") as f:
                f.seek(_HEAD + n)
                rest = f.read(s["at"] - _HEAD - n)
            with open(path + ".cut", "wb") as dst:  # files cannot truncate: copy, rename
                prefix(path, _HEAD + n, self.buf, dst=dst)
            os.rename(path + ".cut", path)
        s["at"] = _HEAD + n
        # the signature first, then the manifest parsed: their heap peaks do not add up
        with open(path, "rb") as f:
            f.seek(12)
            sig = f.read(64)
            ok = ed25519.verify(self.pub, f, sig)
            del sys.modules["ed25519"], ed25519  # needed once per transfer: ~5 KiB back to the heap
            gc.collect()
            f.seek(_HEAD)
            try:
                m = json.load(f)
            except ValueError:
                m = None
        if not ok:  # whose key: the (unsigned) manifest's key id tells the reason apart
            key = m.get("key") if isinstance(m, dict) else None
            mine = binascii.hexlify(hashlib.sha256(self.pub).digest()[:8]).decode()
            if isinstance(key, str) and key != mine:
                self._refuse("other_key", "signed by %s, this board trusts %s" % (key, mine))
            else:
                self._refuse("bad_signature")
            return True
        why = self._fields(m)
        if why:
            self._refuse(why)
            return True
        s["ver"] = m["version"]
        s["n"] = n
        s["of"] = _HEAD + n + m["total"]
        self._load(m)
        self._save()
        if rest:
            return self._body(rest) or True
        return True

    def _fields(self, m):
        # the signed manifest's fields against this board; a reason code or None
        try:
            if m["sen_ota"] != 1 or m["total"] != sum(x["size"] for x in m["files"]):
                return "bad_manifest"
            for x in m["files"]:
                if x["path"][:1] == "/" or ".." in x["path"] or x["path"] == "boot.py" or len(x["sha256"]) != 64:
                    return "bad_manifest"
            if self.board not in m["boards"]:
                return "wrong_board"
            if vt(self.mpy) < vt(m["min_mpy"]):
                return "old_micropython"
            if not m["downgrade"] and self.running and vt(m["version"]) <= vt(self.running):
                return "downgrade"
        except (KeyError, TypeError, ValueError, AttributeError):
            return "bad_manifest"
        return None

    def _load(self, m=None):
        if m is None:
            with open(self._dir() + "/ota_head.bin", "rb") as f:
                f.seek(_HEAD)
                m = json.load(f)
        self.files = [(x["path"], x["size"], binascii.unhexlify(x["sha256"])) for x in m["files"]]
        self._h = None  # rebuilt from flash at the next chunk (_body)

    # File bytes: `at` says which file and where; a file's hash is rebuilt from what is on
    # flash when the transfer resumes inside it.
    def _body(self, data):
        s = self.st
        pos = s["at"] - _HEAD - s["n"]
        i = 0
        while i < len(data):
            j, inner = self._locate(pos)
            path, size, digest = self.files[j]
            full = self._dir() + "/" + path
            if self._h is None:  # a new file, or resumed inside one: hash what is on flash
                mkdirs(full)
                self._h = hashlib.sha256()
                if inner:
                    prefix(full, inner, self.buf, h=self._h)
            k = min(size - inner, len(data) - i)
            with open(full, "r+b" if inner and exists(full) else "wb") as f:
                f.seek(inner)
                f.write(data[i:i + k])
            self._h.update(data[i:i + k])
            i += k
            pos += k
            s["at"] += k
            if inner + k == size:
                if self._h.digest() != digest:
                    self._refuse("file_changed", path)
                    return True
                self._h = None
                self._n = _SAVE_EVERY
        if s["at"] == s["of"]:
            return self._ready()
        return self._tick()

    def _locate(self, pos):
        # a position in the files' bytes -> (file index, offset inside it)
        for j in range(len(self.files)):
            size = self.files[j][1]
            if pos < size:
                return j, pos
            pos -= size
        raise ValueError("past the end")

    def _ready(self):
        # every file checked: the slot goes on trial at the next boot (boot.py)
        for p, size, _ in self.files:
            if not size:  # an empty file takes no bytes: made here
                mkdirs(self._dir() + "/" + p)
                open(self._dir() + "/" + p, "wb").close()
        os.remove(self._dir() + "/ota_head.bin")
        sl = slots(self.root)
        sl["try"] = self.st["slot"]
        sl["left"] = TRIES
        sl["ver"] = self.st["ver"]
        write_json(self.root + SLOTS, sl)
        self.st["st"] = "ready"
        self.files = []
        self._h = None
        self._save()
        return True
