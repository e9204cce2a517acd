# Sen firmware: boot sequence and exit codes. Config check, boot counter, crash-boot
# counter (safe mode after safe_after boots in a row that neither ran 60 s nor ended
# cleanly: the application is skipped, the REPL stays), then the app.
import gc
import sys

import asyncio
from log import log

CRASH = "sen_crash.txt"
EXIT_SAFE = 3


def _crash_count():
    try:
        with open(CRASH) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def _crash_set(n):
    with open(CRASH, "w") as f:
        f.write("%d\n" % n)


def hal_module():
    if sys.platform == "esp32":
        import hal_esp32
        return hal_esp32
    import hal_sim
    return hal_sim


# (config, boot number), or None after printing the error. config and bootcount are only
# referenced from here, so once this returns and they leave sys.modules their code is garbage.
def _load():
    import bootcount
    import config
    try:
        return config.load("config.json", "esp32" if sys.platform == "esp32" else "sim"), \
            bootcount.next_boot()
    except (config.ConfigError, bootcount.BootCountError) as e:
        print("Sen config error: %s" % e)
        return None
    finally:
        for m in ("config", "bootcount"):
            sys.modules.pop(m, None)


# Returns the process exit code.
def main():
    got = _load()
    if got is None:
        return 2
    cfg, boot = got
    got = None
    gc.collect()
    crashes = _crash_count()
    if crashes >= cfg["safe_after"]:
        print("Sen safe mode: %d boots in a row ended in a crash or reset; application "
              "skipped (remove %s to run again)" % (crashes, CRASH))
        return EXIT_SAFE
    _crash_set(crashes + 1)
    hal = hal_module().Hal(cfg)
    gc.collect()
    from app import VERSION, App
    app = App(cfg, hal, boot, cfg["board"], lambda: _crash_set(0))
    print("Sen firmware %s device=%s boot=%d board=%s site=%s port=%s" % (
        VERSION, app.dev, boot, app.board, cfg["site"], sys.platform))
    log("%s %s:%d interval %d ms batch %d max_readings %d outbox %d (%s) reset %s" % (
        cfg["transport"], cfg["host"], cfg["port"], cfg["interval_ms"], cfg["batch_max"],
        cfg["max_readings"], app.ob.count, "ram" if cfg["outbox_ram"] else "flash", hal.reset))
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: no DISCONNECT, so the broker sends the will
        _crash_set(0)
        print("Sen interrupted: %d readings sampled, %d in outbox" % (app.seq, app.ob.count))
        return 130
    if app.error is not None:
        print("Sen stopped: %r" % (app.error,))
        return 1
    _crash_set(0)
    code = 0 if app.ob.dropped == 0 else 1
    print("Sen done: %d readings acked in %d envelopes, dropped %d, boot %d, peak heap %d B"
          % (app.seq - (app.ob.count if app.e2e else app.ob.unsent), app.sent, app.ob.dropped, boot, app.peak))
    return code
