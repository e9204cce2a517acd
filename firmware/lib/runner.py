# Sen firmware: the boot sequence. Config check, boot counter, crash-boot counter (safe
# mode after safe_after boots in a row that neither ran 60 s nor ended cleanly: the
# application is skipped, the REPL stays; a boot ended by a power cut is not one of them:
# the HAL's reset cause of the next boot says "power"). main.py drops this module (and config,
# bootcount) from sys.modules once boot() returns, so their code is garbage while the app
# runs; main.py then runs the app, prints the boot line and owns the exit codes. Before the
# app: OTA's boot step (_ota, otaboot.py), with the heap still nearly empty.
import gc
import sys

from log import CRASH, crash_set

EXIT_SAFE = 3


def _crash_count():
    try:
        with open(CRASH) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def _hal():
    if sys.platform == "esp32":
        import hal_esp32
        return hal_esp32
    import hal_sim
    return hal_sim


# (config, boot number), or None after printing the error; config's "fid" is the flash id,
# "fid0" the last boot run without one (firmware older than fid; 0: none).
def _load():
    import bootcount
    import config
    try:
        c = config.load("config.json", "esp32" if sys.platform == "esp32" else "sim")
        n, c["fid"], c["fid0"] = bootcount.next_boot()
        return c, n
    except (config.ConfigError, bootcount.BootCountError) as e:
        print("Sen config error: %s" % e)
        return None
    finally:
        for m in ("config", "bootcount"):
            sys.modules.pop(m, None)


# -> an exit code (config error 2, safe mode 3), or (config, hal, boot number) to run the app
def boot():
    got = _load()
    if got is None:
        return 2
    cfg, n = got
    got = None
    gc.collect()
    crashes = _crash_count()
    if crashes and _hal().reset_cause() == "power":
        crashes -= 1  # the last boot lost its power (a field board's supply, a cable): not a crash
    if crashes >= cfg["safe_after"]:
        print("Sen safe mode: %d boots in a row ended in a crash or reset; application "
              "skipped (remove %s to run again)" % (crashes, CRASH))
        return EXIT_SAFE
    if _ota(cfg):  # an update unpacked and on trial from the next boot: reboot into it
        _hal().Hal(cfg).reboot()
    crash_set(crashes + 1)
    gc.collect()
    return cfg, _hal().Hal(cfg), n


# OTA at boot (otaboot.py): the version running, a trial, the last transfer's state, the
# bundle's head checked or its files unpacked; into cfg. True: reboot now. Not loaded on a
# board that never had an update.
def _ota(cfg):
    cfg["ver"], cfg["trial"], cfg["ota"] = "0", False, {}
    try:
        import os
        try:
            os.stat("sen_ota.json")
        except OSError:
            os.stat("sen_slot.json")
    except OSError:
        return False
    try:
        import otaboot
        return otaboot.boot(cfg)
    except Exception as e:  # never a reason not to run the app
        sys.print_exception(e)
        return False
    finally:
        for m in ("otaboot", "otaslot", "ed25519"):
            sys.modules.pop(m, None)
