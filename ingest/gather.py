"""In a flood, the writer lets the next batch fill before it writes it.

InfluxDB pays for a write per request and per series in it, besides per point. Measured with
InfluxDB 1.6 on 2 cores, 100,000 one-reading lines from 1,000 devices, written one batch after
another: 0.98 s of its CPU in batches of 500 lines, 0.97 in 1,000, 0.71 in 2,000, 0.62 in 5,000.
Without waiting, the batch is what came during the last write: ~500-1,000 lines while the
gateway drains a backlog of one-reading messages, so InfluxDB burned a third more CPU than it
needed, CPU the gateway lacked on a small machine. With this wait, a two-worker gateway on 2
cores draining 100,000 such messages made ~80 writes, not ~175, and InfluxDB used 0.79-0.92 s
of CPU, not 1.17-1.34 (three interleaved pairs); the drains' medians, 3.26 s against 3.74 (8
interleaved runs), then 2.915 against 2.975 (6), one worker no slower.

The rule (:func:`gather`, called after each write of the writer's first lane): when at least a
tenth of a batch came during the write (``FLOOD_SHARE``; never at low load, where a reading is
written at once) and the batch just written held fewer than two lines a spool row (a row is a
message, its lines one device's: one-line rows make a series of nearly every line), the writer
looks again every 10 ms while lines keep coming, and writes when a full batch waits, when a look
finds nothing new (the flood ended: what came is written at once), or after 0.1 s. A reading
waits at most that much longer for InfluxDB, and only in a flood; the broker's PUBACK and the
device's ack do not wait for InfluxDB at all. Ten-reading messages are not held: a batch of
them has a tenth of the series already, and there InfluxDB is what the drain waits for
(holding them back, the backlog of 10,000 drained in 0.935 s, not 0.89: medians of 6
interleaved).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

FLOOD_SHARE = 10  # a flood: at least batch_size / FLOOD_SHARE lines came during a write
MAX_WAIT_S = 0.1
MAX_LINES_PER_ROW = 2.0  # batches of rows with more lines a row are written as they come
_STEP_S = 0.01


def gather(waiting: Callable[[], int], batch_size: int, stopping: threading.Event, *,
           lines_per_row: float = 1.0) -> float:
    """Wait for the next batch to fill while a flood lasts (see the module); ``waiting()``: the
    lines no write has taken; ``lines_per_row``: of the batch just written. Returns the seconds
    waited."""
    if lines_per_row >= MAX_LINES_PER_ROW:
        return 0.0
    count = waiting()
    if count < max(1, batch_size // FLOOD_SHARE):
        return 0.0
    started = time.monotonic()
    deadline = started + MAX_WAIT_S
    while count < batch_size and time.monotonic() < deadline:
        if stopping.wait(_STEP_S):
            break
        before, count = count, waiting()
        if count <= before:  # nothing new (or another lane took them): write what came
            break
    return time.monotonic() - started
