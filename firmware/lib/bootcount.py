# Sen firmware: the boot counter, one integer in a file in the flash dir, +1 per start.
# Written to a temporary file and renamed, so a power cut leaves the old or the new value.
import os

FILE = "sen_boot.txt"


class BootCountError(Exception):
    pass


def next_boot(path=FILE):
    n = 0
    try:
        with open(path) as f:
            n = int(f.read().strip() or "0")
    except OSError:
        n = 0  # first boot on this flash
    except ValueError:
        # never restart at 1 silently: (device, boot, seq) would repeat and be deduplicated away
        raise BootCountError("%s: corrupt boot counter, fix or remove it" % path)
    n += 1
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % n)
    os.rename(tmp, path)
    return n
