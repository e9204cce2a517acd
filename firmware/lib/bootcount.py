# Sen firmware: the boot counter and the flash id, each one integer in a file in the flash dir.
# The counter is +1 per start. The flash id (fid, 1..2^32-1, in every envelope) is drawn at
# random when the flash holds no boot counter (a new or erased flash: its boot 1 is not the
# old flash's, DESIGN.md "Identity"), or holds a counter but no fid (firmware that predates
# it: the counter goes on), and kept. os.urandom is the hardware RNG on the ESP32
# (esp_random) and the system's random source on the unix port; the draw is mixed with the
# boot's microsecond timing.
# Each is written to a temporary file and renamed, so a power cut leaves the old or the new
# value; the fid is written before the counter. A flash upgraded from firmware without a fid
# also keeps, in FID0, the last boot it ran without one: those boots' readings, still in the
# outbox, were (or would have been) sent without a fid, so they go on as fid 0 (payload.build).
import os
import time

FILE = "sen_boot.txt"
FID = "sen_fid.txt"
FID0 = "sen_fid0.txt"


class BootCountError(Exception):
    pass


# -> (boot number, fid, the last boot without a fid: 0 for none)
def next_boot(path=FILE, fid_path=FID, fid0_path=FID0):
    n, f = _read(path), _read(fid_path)
    kept = f
    if n is not None and not 0 <= n < 1 << 32:
        # never restart at 1 silently: (device, boot, seq) would repeat and be deduplicated away
        raise BootCountError("%s: corrupt boot counter, fix or remove it" % path)
    w = []  # type: list  # what to write: (file, value)
    if n is None or f is None or not 0 < f < 1 << 32:  # a corrupt fid is drawn again: safe
        f = 0
        while not f:
            f = (int.from_bytes(os.urandom(4), "little") ^ time.ticks_us()) & 0xFFFFFFFF  # type: ignore[operator]
        print("boot: flash id %d drawn (%s)" % (f, "no boot counter: a new or erased flash"
                                                if n is None else "none kept yet"))
        if n is None:  # a new flash: no boot of it ran without a fid
            try:
                os.remove(fid0_path)
            except OSError:
                pass
        elif kept is None and (_read(fid0_path) or 0) <= 0:  # upgraded: its boots 1..n had none
            w.append((fid0_path, n))
        w.append((fid_path, f))
    n = (n or 0) + 1
    w.append((path, n))
    for p, x in w:
        with open(p + ".tmp", "w") as g:
            g.write("%d\n" % x)
        os.rename(p + ".tmp", p)
    return n, f, max(_read(fid0_path) or 0, 0)


# One integer file: None without it, -1 when it holds no number (an empty one is 0).
def _read(p):
    try:
        with open(p) as f:
            return int(f.read().strip() or "0")
    except OSError:
        return None
    except ValueError:
        return -1
