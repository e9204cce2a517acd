"""In a flood, the writer lets the next batch fill before it writes it.

InfluxDB pays for a write per request and per series in it, besides per point. Measured with
InfluxDB 1.6 on 2 cores, 100,000 one-reading lines from 1,000 devices, written one batch after
another: 0.98 s of its CPU in batches of 500 lines, 0.97 in 1,000, 0.71 in 2,000, 0.62 in 5,000.
Without waiting, the batch is what came during the last write: ~500-1,000 lines while the
gateway drains a backlog of one-reading messages, so InfluxDB burned a third more CPU than it
needed, CPU the gateway lacked on a small machine. With this wait a two-worker gateway on 2
cores drained a backlog of 100,000 such messages in 3.26 s instead of 3.74 (medians of 8
interleaved runs), one worker no slower (4.14 s, 4.21 without).

The rule (:func:`gather`, called after each write of the writer's first lane): when at least a
tenth of a batch came during the write (``FLOOD_SHARE``; never at low load, where a reading is
written at once), the writer looks again every 10 ms while lines keep coming, and writes when a
full batch waits, when a look finds nothing new (the flood ended: what came is written at once),
or after 0.1 s. A reading waits at most that much longer for InfluxDB, and only in a flood; the
broker's PUBACK and the device's ack do not wait for InfluxDB at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

FLOOD_SHARE = 10  # a flood: at least batch_size / FLOOD_SHARE lines came during a write
MAX_WAIT_S = 0.1
_STEP_S = 0.01


def gather(waiting: Callable[[], int], batch_size: int, stopping: threading.Event) -> float:
    """Wait for the next batch to fill while a flood lasts (see the module); ``waiting()``: the
    lines no write has taken. Returns the seconds waited."""
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
