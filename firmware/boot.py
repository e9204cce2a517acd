# Sen boot loader: flashed by cable (sen deploy), never by OTA (DESIGN.md, OTA). It starts the
# application: main.py of the slot sen_slot.json names (app_a/ or app_b/), or the one beside
# this file (the application flashed by cable). A slot on trial ("try") has its boots counted
# down ("left") before it starts; at 0, unconfirmed, the trial is over ("failed", "why":
# trial_failed) and the active slot starts again. A trial that raises out of its main.py (at
# import), or stops it with an error exit (config refused, safe mode, a task died), is over at
# once ("why": crashed) and the board reboots. Its slot choice is lib/otaslot.py's pick(), the
# reference the tests run; this file carries its own copy, as no update may change it. An
# ESP32 runs this file at reset, then the root's main.py, which sees the application already
# ran (module main) and does nothing; the unix port runs it as `micropython firmware/boot.py`
# in the flash dir (the simulator does once the flash has a sen_slot.json: hardware/vboard.py).
# Its code stays in RAM while the application runs (~1.4 KiB on the unix port): kept short.
import sys
import json
import os


def _w(s):
    with open("sen_slot.tmp", "w") as f:
        json.dump(s, f)
    os.rename("sen_slot.tmp", "sen_slot.json")


try:
    with open("sen_slot.json") as f:
        s = json.load(f)
except (OSError, ValueError):
    s = {}
t = s.get("try")
if t:
    if s.get("left", 0) > 0:
        s["left"] -= 1
    else:
        s["failed"] = t
        s["why"] = "trial_failed"
        del s["try"]
        t = None
    _w(s)
if t or s.get("active"):
    sys.path.insert(0, "app_" + (t or s["active"]))
s = None
try:
    import main  # noqa: F401  (the application: it returns when it is done)
except BaseException as e:  # on trial: an exception, or an exit but done, sleep, reboot, Ctrl-C
    c = (e.args[0] if e.args else None) if isinstance(e, SystemExit) else 1
    if not t or isinstance(e, KeyboardInterrupt) or c in (None, 0, 4, 5, 130):
        raise
    sys.print_exception(e)
    with open("sen_slot.json") as f:
        s = json.load(f)
    if s.get("try") != t:
        raise
    s["failed"] = s.pop("try")
    s["why"] = "crashed"
    _w(s)
    print("Sen boot: the new version crashed (at import, or an error exit): rolled back")
    if sys.platform == "esp32":
        import machine
        machine.reset()
    sys.exit(5)  # the unix port's reboot (lib/hal_sim.py)
