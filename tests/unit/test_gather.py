"""ingest.gather: in a flood the writer lets the next batch fill while lines keep coming, at
most MAX_WAIT_S; never at low load. ingest.retry.Outage: what the writer keeps of an outage."""

from __future__ import annotations

import threading
import time

from ingest.gather import MAX_LINES_PER_ROW, MAX_WAIT_S, gather
from ingest.retry import Outage


class Flow:
    """``waiting()`` as the writer's: the lines that wait, ``step`` more at every look."""

    def __init__(self, start: int, step: int, looks_with_lines: int = 10**9) -> None:
        self.count, self.step, self.left, self.looks = start, step, looks_with_lines, 0

    def __call__(self) -> int:
        if self.looks and self.left:
            self.count += self.step
            self.left -= 1
        self.looks += 1
        return self.count


def test_low_load_never_waits() -> None:
    flow = Flow(start=499, step=100)  # less than a tenth of 5,000 came during the write
    assert gather(flow, 5000, threading.Event()) == 0.0
    assert flow.looks == 1


def test_a_flood_waits_until_a_full_batch_waits() -> None:
    flow = Flow(start=500, step=1000)
    waited = gather(flow, 5000, threading.Event())
    assert flow.count == 5500 and flow.looks == 6  # 500, 1500 ... 5500: full, written
    assert 0 < waited < MAX_WAIT_S + 1


def test_a_flood_that_ends_is_written_at_the_next_look() -> None:
    flow = Flow(start=600, step=100, looks_with_lines=2)  # two more looks find lines, the third none
    gather(flow, 5000, threading.Event())
    assert flow.count == 800 and flow.looks == 4


def test_a_flood_that_never_fills_a_batch_waits_at_most_max_wait() -> None:
    flow = Flow(start=500, step=1)
    started = time.monotonic()
    waited = gather(flow, 5000, threading.Event())
    assert MAX_WAIT_S <= waited <= time.monotonic() - started
    assert flow.looks <= MAX_WAIT_S / 0.01 + 2  # a look every 10 ms, not a busy loop


def test_rows_of_several_lines_are_not_held() -> None:
    # Ten-reading messages: a batch of them has few series a line, and InfluxDB is the bottleneck.
    flow = Flow(start=4000, step=100)
    assert gather(flow, 5000, threading.Event(), lines_per_row=MAX_LINES_PER_ROW) == 0.0
    assert flow.looks == 0
    assert gather(flow, 5000, threading.Event(), lines_per_row=1.5) > 0


def test_a_stop_ends_the_wait_at_once() -> None:
    stopping = threading.Event()
    stopping.set()
    flow = Flow(start=500, step=1)
    gather(flow, 5000, stopping)
    assert flow.looks == 1


def test_a_tiny_batch_size_still_needs_a_line_waiting() -> None:
    assert gather(Flow(start=0, step=1), 5, threading.Event()) == 0.0


def test_an_outage_is_logged_at_its_start_then_once_a_period() -> None:
    outage = Outage(log_every_s=60.0)
    assert outage.since is None and outage.ended() is None
    assert outage.failed(retry_after_s=7.0) is True
    assert [outage.failed() for _ in range(3)] == [False] * 3
    assert outage.failures == 4 and outage.since is not None
    assert outage.take_retry_after() is None  # the last answer said nothing
    lasted = outage.ended()
    assert lasted is not None and lasted >= 0 and outage.since is None
    assert outage.failed(retry_after_s=2.5) is True  # a new outage logs again
    assert outage.take_retry_after() == 2.5 and outage.take_retry_after() is None
    assert outage.failures == 5


def test_an_outage_logs_again_after_its_period() -> None:
    outage = Outage(log_every_s=0.0)
    assert outage.failed() and outage.failed()
