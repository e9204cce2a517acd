# Application slots (DESIGN.md, OTA). sen_slot.json says which slot is active ("": the app
# flashed by cable, in the filesystem's root; "a": app_a/; "b": app_b/), which one is on trial
# ("try") and how many boots it has left ("left"). ota.py marks a verified slot for trial; the
# app confirms it once it has connected and got its first end-to-end ack in time (confirm);
# boot.py picks the slot to start (pick), and as boot.py is never updated it carries its own
# copy of pick(): this one is the reference the tests run.
import os
import json
from micropython import const

SLOTS = "sen_slot.json"
TRIES = const(3)  # boots a new version gets to confirm itself


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def vt(v):
    # "1.5.0" -> (1, 5, 0); ValueError when it is not dotted numbers
    t = tuple(int(x) for x in v.split("."))
    if not t:
        raise ValueError
    return t


def write_json(path, obj):
    # a new file, then a rename over the old: a power cut leaves one or the other
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)


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


def mkdirs(full):
    # every folder above the file path full
    parts = full.split("/")
    for n in range(1, len(parts)):
        d = "/".join(parts[:n])
        if d and not exists(d):
            os.mkdir(d)


def prefix(path, n, buf, h=None, dst=None):
    # the first n bytes of path, through buf, into the hash h and/or the file dst
    with open(path, "rb") as f:
        while n > 0:
            k = f.readinto(memoryview(buf)[:min(n, len(buf))])
            if not k:
                raise OSError("%s is shorter than expected" % path)
            if h:
                h.update(memoryview(buf)[:k])
            if dst:
                dst.write(memoryview(buf)[:k])
            n -= k


def slots(root=""):
    try:
        with open(root + SLOTS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"active": ""}


def pick(root=""):
    # The folder to start this boot ("" + root: the root). A trial slot's boots are counted
    # down before it starts, so a version that crashes or hangs uses its tries up; then the
    # active slot starts again and the trial is recorded as rolled back.
    sl = slots(root)
    t = sl.get("try")
    if t:
        if sl.get("left", 0) > 0:
            sl["left"] -= 1
            write_json(root + SLOTS, sl)
            return root + "app_" + t
        sl["failed"] = t
        sl["why"] = "trial_failed"
        del sl["try"]
        write_json(root + SLOTS, sl)
    a = sl.get("active", "")
    return root + ("app_" + a if a else "")


def confirm(root=""):
    # The running trial passed: its slot becomes the active one. False when none is on trial.
    sl = slots(root)
    t = sl.get("try")
    if not t:
        return False
    write_json(root + SLOTS, {"active": t, "ver": sl.get("ver", "")})
    return True
