# OTA at boot (DESIGN.md, OTA): runner.py calls boot() before the app is loaded, while the
# heap is nearly empty, and drops this module (ed25519 too) once it returns. The app's
# receiver (ota.py) only stores the bundle's bytes in sen_ota.bin; what needs heap is here:
# 1. the head, once in ("chk", no size yet): the signature (ed25519.py) and the key id, then the
#    manifest, read as a stream (its files go one at a time to sen_ota_files.bin; a 32-file
#    manifest parsed whole would hold ~10 KiB), its fields against this board; the transfer then
#    goes on (the files) or is refused with the reason;
# 2. the whole bundle, once in ("chk" again): its files unpacked into the inactive slot through
#    one 512-byte buffer, each checked against its SHA-256; the slot is then marked for trial
#    in sen_slot.json and boot() asks for a reboot (boot.py then starts the trial);
# 3. where the last transfer stands against the slots: on trial, done (confirmed), or rolled
#    back (boot.py's record in sen_slot.json: trial_failed or crashed);
# and puts in the config what the app needs: "ver" (the version this boot runs: its slot's; "0"
# for the application flashed by cable), "trial" (it runs on trial and must confirm itself)
# and "ota" (the transfer's state, {} before any OTA).
import os
import sys
import json
import struct
import hashlib
import binascii
from micropython import const
from otaslot import SLOTS, TRIES, slots, running, write_json

_HEAD = const(76)
_ENTRY_MAX = const(400)  # bytes of one files entry of the manifest
STATE = "sen_ota.json"  # ota.py's names (not imported: its code stays out of the boot)
BIN = "sen_ota.bin"
TABLE = "sen_ota_files.bin"  # per file: size u32, path length u8, SHA-256 (32 B), path


def vt(v):
    # "1.5.0" -> (1, 5, 0); ValueError when it is not dotted numbers
    t = tuple(int(x) for x in v.split("."))
    if not t:
        raise ValueError
    return t


def rmtree(d):
    # d and everything in it; nothing when it is not there
    try:
        for e in os.ilistdir(d):
            p = d + "/" + e[0]
            if e[1] == 0x4000:
                rmtree(p)
            else:
                os.remove(p)
        os.rmdir(d)
    except OSError:
        pass


def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass


# -> True when the board must reboot now (a slot was just marked for trial)
def boot(cfg, root=""):
    sl = slots(root)
    cfg["ver"], cfg["trial"] = running(sl)[1:]
    s = {}
    try:
        with open(root + STATE) as f:
            s = json.load(f)
    except (OSError, ValueError):
        pass
    cfg["ota"] = s = s if isinstance(s, dict) and "st" in s else {}
    if not s:
        return False
    st = s["st"]
    x = s.get("slot")
    if x and st in ("recv", "ready", "trial"):  # where did the update go since: boot.py, the app say
        if sl.get("try") == x:
            s["st"] = "trial"
        elif sl.get("active") == x:
            s["st"] = "done"
        elif sl.get("failed") == x:
            s["st"] = "rolled_back"
            s["why"] = sl.get("why", "trial_failed")
        elif st != "recv":
            s["st"] = "rolled_back"
            s["why"] = "trial_failed"
    why = again = None
    if s["st"] == "recv" and s.get("chk"):
        del s["chk"]
        try:
            if s["of"]:
                why = _unpack(s, sl, root)
                again = not why
            else:
                pub = cfg.get("ota_pub")
                why = _check(s, pub and binascii.unhexlify(pub), cfg["board"], cfg["ver"], root)
                if not why:
                    print("ota: %s checked: signed, fits this board; its files come next" % s["ver"])
        except OSError as e:
            why = "no_space" if e.args and e.args[0] == 28 else "flash"
        if why:
            print("ota: refused (%s)" % why)
            s["st"] = "refused"
            s["why"] = why
            if s.get("slot"):
                rmtree(root + "app_" + s["slot"])
        st = ""
    if s["st"] != "recv":
        s.pop("chk", None)
        _rm(root + BIN)
        _rm(root + TABLE)
    if s["st"] != st:
        write_json(root + STATE, s)
    return again


def _check(s, pub, board, ver, root):
    # The head's checks, in the contract's order; a reason code, or None when the files may
    # come (s then has the version and the bundle's size).
    with open(root + BIN, "rb") as f:
        f.seek(12)
        sig = f.read(64)
        ok = False
        if pub:
            import ed25519
            ok = ed25519.verify(pub, f, sig)  # the manifest, streamed to its end
            del sys.modules["ed25519"], ed25519
        f.seek(_HEAD)
        try:
            with open(root + TABLE, "wb") as o:
                m = _manifest(f, o)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            m = None
    if not pub:
        return "no_key"
    if not ok:  # whose key: the (unsigned) manifest's key id tells the reason apart
        key = m.get("key") if isinstance(m, dict) else None
        mine = binascii.hexlify(hashlib.sha256(pub).digest()[:8]).decode()
        return "other_key" if isinstance(key, str) and key != mine else "bad_signature"
    try:
        if m is None or m["sen_ota"] != 1 or m["total"] != m["sum"] or not m["nf"] or \
                not isinstance(m["version"], str):
            return "bad_manifest"
        if board not in m["boards"]:
            return "wrong_board"
        if vt(".".join(str(x) for x in sys.implementation.version[:3])) < vt(m["min_mpy"]):
            return "old_micropython"
        if vt(m["version"]) <= vt(ver) and m["downgrade"] is not True:
            return "downgrade"
    except (KeyError, TypeError, ValueError, AttributeError):
        return "bad_manifest"
    s["ver"] = m["version"]
    s["of"] = _HEAD + s["n"] + m["total"]
    return None


def _manifest(f, o):
    # The manifest (f, from its first byte to its end) as a dict of its members but "files",
    # whose entries are parsed one at a time and written to the table o; "nf" and "sum" say how
    # many there were and the sum of their sizes. JSON's syntax is followed only as far as
    # needed to find the entries (strings, nesting); json.loads checks each part.
    top = bytearray()
    one = None  # the entry being read
    depth = 0
    q = esc = files = False
    nf = total = 0
    b = bytearray(128)
    while True:
        k = f.readinto(b)
        if not k:
            break
        for c in memoryview(b)[:k]:
            d0 = depth
            if q:  # inside a string
                if esc:
                    esc = False
                elif c == 92:  # backslash
                    esc = True
                elif c == 34:
                    q = False
            elif c == 34:
                q = True
            elif c in b" \t\r\n":
                continue
            elif c == 123 or c == 91:  # { [
                depth += 1
            elif c == 125 or c == 93:  # } ]
                depth -= 1
            if one is not None:
                one.append(c)
                if len(one) > _ENTRY_MAX:
                    raise ValueError("files entry too long")
                if depth == 2:
                    total += _entry(json.loads(bytes(one)), o)
                    nf += 1
                    one = None
            elif files and d0 == 2 and c == 123:
                one = bytearray(b"{")
            elif not (files and d0 == 2 and c == 44):  # not the comma between entries
                if files and depth == 1:
                    files = False
                elif depth == 2 and d0 == 1 and c == 91 and top.endswith(b'"files":'):
                    files = True
                top.append(c)
    m = json.loads(bytes(top))
    m["nf"] = nf
    m["sum"] = total
    return m


def _entry(x, o):
    # One files entry to the table: size u32, path length u8, SHA-256, path. Its size.
    p = x["path"]
    size = x["size"]
    if not isinstance(size, int) or size < 0 or len(x["sha256"]) != 64 or not p or p == "boot.py" \
            or len(p) > 120 or p[0] == "/" or ".." in p or [c for c in p if not (c.isalpha() or c.isdigit() or c in "_/.")] \
            or not (p.endswith(".py") or p.endswith(".mpy") or p.endswith(".json")):
        raise ValueError("bad files entry")
    p = p.encode()
    o.write(struct.pack(">IB", size, len(p)))
    o.write(binascii.unhexlify(x["sha256"]))
    o.write(p)
    return size


def _unpack(s, sl, root):
    # The received bundle's files into the inactive slot, each checked against its SHA-256 as
    # it is copied; then the slot is marked for trial. A reason code, or None.
    x = s["slot"] = "b" if sl.get("active") == "a" else "a"
    if sl.pop("failed", None) is not None:  # an older rollback's record would misname this slot
        sl.pop("why", None)
        write_json(root + SLOTS, sl)
    s["chk"] = 1  # a power cut while unpacking: again at the next boot
    write_json(root + STATE, s)
    d = root + "app_" + x
    rmtree(d)
    os.mkdir(d)
    b = bytearray(512)
    mv = memoryview(b)
    with open(root + BIN, "rb") as f, open(root + TABLE, "rb") as t:
        f.seek(_HEAD + s["n"])
        while True:
            e = t.read(5)
            if len(e) < 5:
                break
            size, ln = struct.unpack(">IB", e)
            digest = t.read(32)
            p = t.read(ln).decode()
            full = d + "/" + p
            parts = full.split("/")
            for i in range(1, len(parts)):  # the folders above it
                try:
                    os.mkdir("/".join(parts[:i]))
                except OSError:
                    pass
            h = hashlib.sha256()
            with open(full, "wb") as out:
                while size:
                    k = f.readinto(mv[:min(size, 512)])
                    if not k:
                        return "truncated"
                    h.update(mv[:k])
                    out.write(mv[:k])
                    size -= k
            if h.digest() != digest:
                print("ota: %s does not match its SHA-256" % p)
                return "file_changed"
    del s["chk"]
    sl = slots(root)
    sl["try"] = x
    sl["left"] = TRIES
    sl["tver"] = s["ver"]
    write_json(root + SLOTS, sl)  # first: a power cut before the next write still runs the trial
    s["st"] = "ready"
    print("ota: %s unpacked into app_%s, every file checked: on trial from the next boot" % (s["ver"], x))
    return None
