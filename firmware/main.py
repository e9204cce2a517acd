# Sen firmware entry point: the same file runs on ESP32 and on the MicroPython unix port.
# boot.py imports it (as module "main") from the application slot it picked (DESIGN.md, OTA), or
# from beside itself; on the unix port run boot.py from the board's "flash" dir (config.json
# lives there):
#   cd <flash_dir> && micropython [-X heapsize=64K] /abs/path/firmware/boot.py
# (running this file directly skips the slots). An ESP32 runs the root's main.py as __main__
# after boot.py: the application has run by then, so that run does nothing.
import sys

_skip = __name__ == "__main__" and "main" in sys.modules
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_slot = _here in ("app_a", "app_b")  # a slot of the flash dir, put there by an OTA update
if _slot:  # its lib/ before everything: the root's (or the checkout's) must not shadow it
    sys.path.insert(0, _here + "/lib")
if sys.platform != "esp32" and not _skip:
    import os
    # unix port: put firmware/lib on the path, after '' and '.frozen' (asyncio lives there)
    _lib = _here + "/lib"
    if _lib not in sys.path:
        sys.path.insert(2 if ".frozen" in sys.path else 1, _lib)
    # precompiled .mpy (SEN_MPY=<dir>, built by mpy-cross from lib/) go before lib/; a slot
    # only takes the simulated devices from there (last on the path)
    _mpy = os.getenv("SEN_MPY")
    if _mpy and _mpy not in sys.path:
        if _slot:
            sys.path.append(_mpy)
        else:
            sys.path.insert(sys.path.index(_lib), _mpy)
    # the register-level simulated sensors, when this checkout has them (beside the firmware
    # folder of the script the port runs: boot.py or this file)
    _top = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
    _sim = _top.rsplit("/", 1)[0] + "/hardware/simdev" if "/" in _top else "../hardware/simdev"
    try:
        os.stat(_sim)
        sys.path.append(_sim)
    except OSError:
        pass

if not _skip:
    import gc

    import bufs  # noqa: F401  (first: its buffers need the heap still in one piece)

    # asyncio first, with a collection after: compiling .py source on the board needs large
    # blocks, and a fragmented heap has none (.mpy files need less). The transport (mqtt or
    # seriallink) is imported by the app for the one the config names.
    import asyncio  # noqa: F401

    gc.collect()

    import runner

    gc.collect()
    _got = runner.boot()
    # the boot code (runner, and config and bootcount before it) is garbage from here on
    del sys.modules["runner"]
    del runner
    gc.collect()
    if isinstance(_got, int):
        sys.exit(_got)
    if _got[0]["ota"].get("of") and _got[0]["ota"].get("st") == "recv":
        # an update's files are coming: the receiver now, while the heap is in one piece, not
        # at their first chunk, in a heap in pieces (firmware/README.md, OTA)
        __import__("ota")  # in sys.modules only: the app drops it when idle
    import asyncio

    import app
    from log import crash_set, log

    # Runs the app; returns the process exit code (firmware/README.md; runner.boot did the boot
    # checks).
    def _run(cfg, hal, boot):
        a = app.App(cfg, hal, boot)
        ob = a.ob
        print("Sen firmware %s device=%s boot=%d board=%s site=%s port=%s ver=%s%s" % (
            app.VERSION, a.dev, boot, cfg["board"], cfg["site"], sys.platform, cfg["ver"],
            " (on trial)" if cfg["trial"] else ""))
        log("%s %s:%d interval %d ms batch %d max_readings %d outbox %d (%s) reset %s" % (
            cfg["transport"], cfg["host"], cfg["port"], cfg["interval_ms"], cfg["batch_max"],
            cfg["max_readings"], ob.count, "ram" if cfg["outbox_ram"] else "flash", hal.reset))
        try:
            asyncio.run(a.run())
        except KeyboardInterrupt:  # Ctrl-C / SIGINT: no DISCONNECT, so the broker sends the will
            crash_set(0)
            print("Sen interrupted: %d readings sampled, %d in outbox" % (a.seq, ob.count))
            return 130
        if a.error is not None:
            print("Sen stopped: %r" % (a.error,))
            return 1
        crash_set(0)
        print("Sen done: %d readings acked in %d envelopes, dropped %d, boot %d, peak heap %d B"
              % (a.seq - (ob.count if a.e2e else ob.unsent), a.sent, ob.dropped, boot, a.peak))
        return 0 if ob.dropped == 0 else 1

    _code = _run(*_got)
    if _code or sys.platform != "esp32":
        sys.exit(_code)
