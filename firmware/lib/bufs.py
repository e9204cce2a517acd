# Sen firmware: the big long-lived buffers, allocated first at boot (main.py imports this
# module before anything else) while the heap is still in one piece.
from micropython import const

ENV_MAX = const(2048)  # one envelope (DESIGN allows 4 KiB; ~28 two-metric readings fit)

env = bytearray(ENV_MAX)
