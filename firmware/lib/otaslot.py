# Application slots (DESIGN.md, OTA). sen_slot.json says which slot is active ("": the app
# flashed by cable, beside boot.py; "a": app_a/; "b": app_b/) and the version it runs ("ver"),
# which one is on trial ("try"), its version ("tver") and how many boots it has left ("left");
# after a rollback, which slot failed ("failed") and why ("why": trial_failed, crashed).
# otaboot.py marks a verified slot for trial; the app confirms it once it has connected and got
# its first end-to-end ack in time (confirm); boot.py picks the slot to start and rolls a trial
# that crashed back: as boot.py is never updated it carries its own copy of pick(): this one is
# the reference the tests run.
import os
import json
from micropython import const

SLOTS = "sen_slot.json"
TRIES = const(3)  # boots a new version gets to confirm itself


def write_json(path, obj):
    # a new file, then a rename over the old: a power cut leaves one or the other
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)


def slots(root=""):
    try:
        with open(root + SLOTS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"active": ""}


def running(sl):
    # (the slot this boot runs, its version, on trial?) from sen_slot.json as boot.py left it
    t = sl.get("try")
    if t:
        return t, sl.get("tver") or "0", True
    a = sl.get("active") or ""
    return a, (sl.get("ver") or "0") if a else "0", False


def pick(root=""):
    # (the folder to start this boot, "" for the root's main.py; the slot on trial or None). A
    # trial slot's boots are counted down before it starts, so a version that hangs or never
    # gets its ack uses its tries up; then the active slot starts again and the trial is
    # recorded as rolled back.
    sl = slots(root)
    t = sl.get("try")
    if t:
        if sl.get("left", 0) > 0:
            sl["left"] -= 1
            write_json(root + SLOTS, sl)
            return root + "app_" + t, t
        sl["failed"] = t
        sl["why"] = "trial_failed"
        del sl["try"]
        write_json(root + SLOTS, sl)
    a = sl.get("active", "")
    return root + ("app_" + a if a else ""), None



def confirm(app=None, root=""):
    # The running trial passed (the App app got its first live end-to-end ack in time): its
    # slot becomes the active one (on flash first: a power cut before that leaves the trial as
    # it was, and says nothing), and the app's status says so. False when none is on trial.
    sl = slots(root)
    t = sl.get("try")
    if t:
        write_json(root + SLOTS, {"active": t, "ver": sl.get("tver") or "0"})
    if app is not None:
        app._trial = False
        if app.ota.get("st") == "trial":
            app.ota["st"] = "done"
            app._ota_pub = True
        print("ota: version %s confirmed (its first end-to-end ack)" % app.cfg["ver"])
    return bool(t)
