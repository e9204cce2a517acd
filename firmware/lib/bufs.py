# Sen firmware: the big long-lived buffers, allocated first at boot (main.py imports this
# module before anything else) while the heap is still in one piece.
from micropython import const

ENV_MAX = const(2048)  # one envelope (DESIGN allows 4 KiB; ~28 two-metric readings fit)
QUEUE_SLOTS = const(60)  # readings held in RAM while the broker is away
SLOT = const(96)  # bytes per encoded reading (about 62 for two metrics with ts)

env = bytearray(ENV_MAX)
queue = bytearray(QUEUE_SLOTS * SLOT)
