# Sen firmware entry point: the same file runs on ESP32 and on the MicroPython unix port.
# On the unix port run it from the board's "flash" dir (config.json lives there):
#   cd <flash_dir> && micropython [-X heapsize=64K] /abs/path/firmware/main.py
import sys

if sys.platform != "esp32":
    # unix port: put firmware/lib on the path, after '' and '.frozen' (asyncio lives there)
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    _lib = _here + "/lib"
    if _lib not in sys.path:
        sys.path.insert(2 if ".frozen" in sys.path else 1, _lib)

import gc

import bufs  # noqa: F401  (first: its buffers need the heap still in one piece)

# Load the biggest modules first, with a collection after each: compiling .py source on the
# board needs large blocks, and a fragmented 64 KiB heap has none (.mpy files need less).
for _m in ("asyncio", "mqtt"):
    __import__(_m)
    gc.collect()

import app

gc.collect()
_code = app.main()
if _code or sys.platform != "esp32":
    sys.exit(_code)
