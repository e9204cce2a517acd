# Sen firmware: the big long-lived buffers, allocated first at boot (main.py imports this
# module before anything else) while the heap is still in one piece.
from micropython import const

# one envelope: the contract (DESIGN.md at the repo root) allows 4 KiB; ~28 two-metric
# readings fit in 2 KiB
ENV_MAX = const(2048)

env = bytearray(ENV_MAX)
