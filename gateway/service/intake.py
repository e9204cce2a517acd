"""Group commit: a thread that takes queued messages in batches and commits each batch at once.

Transports :meth:`Intake.put` a message with a ``done`` callback; the thread drains whatever
waits (up to ``max_batch``), hands it to :meth:`Handler.handle_many` (one spool transaction,
one fsync), then calls each ``done(ack)`` in arrival order — only then may the transport
acknowledge the message — then each :meth:`Intake.on_batch_end` callback (the MQTT input sends
the batch's PUBACKs there, in one write) and finally ``after_batch()``.

Spool full (``Spool.full``): the thread stops taking messages until the writer drained it, and
a batch takes no more messages than the spool has lines of room (a burst read at once does not
overshoot ``max_lines`` by a whole batch). Unacknowledged, the messages stay with the broker
(and the broker sends no more than the gateway's MQTT receive maximum): backpressure, never a drop.
The queue is bounded for what no backpressure reaches: a QoS0 message (``can_drop``: no
delivery was promised for it, and the firmware sends QoS1) is dropped and counted when
``max_waiting`` messages already wait, so a QoS0 flood cannot grow memory without limit.
QoS1 messages are bounded by the receive maximum, serial frames by their port's window.
A failed commit (spool error, disk full) is retried with backoff; nothing is acknowledged
in the meantime.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ingest.errors import SpoolError
from ingest.retry import Backoff
from ingest.spool import Spool

from gateway.service.acks import Ack
from gateway.errors import RegistryError
from gateway.service.handler import HOLD, Handler, Message

_LOGGER = logging.getLogger(__name__)

Done = Callable[[Ack | None], None]
_FULL_LOG_EVERY_S = 60.0
HOLD_MAX_S = 30.0  # a held message (no live anchor came for its boot) is anchored from after this
_HELD_RETRY_S = 0.5  # held messages are handed in again at most this often
MAX_WAITING = 10_000  # messages queued at most before QoS0 ones are dropped


def _nothing() -> None:
    return None


class Intake:
    def __init__(self, handler: Handler, spool: Spool, *, max_batch: int = 500,
                 after_batch: Callable[[], None] = _nothing,
                 backoff: Backoff | None = None, max_waiting: int = MAX_WAITING) -> None:
        self._handler = handler
        self._spool = spool
        self._max_batch = max_batch
        self._after_batch = after_batch
        self._backoff = backoff or Backoff(initial_s=0.1, max_s=5.0)
        self._queue: queue.SimpleQueue[tuple[Message, Done]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._full_logged: float | None = None
        self._max_waiting = max_waiting
        self._drop_logged: float | None = None
        # Queued messages of boots with no anchor yet, not committed nor acked (handler.HOLD),
        # handed in again after each retry interval.
        self._held: list[tuple[Message, Done]] = []
        self._batch_end: list[Callable[[], None]] = []
        self._held_retry = 0.0
        self.batches = 0
        self.committed = 0
        self.full_waits = 0
        self.dropped = 0

    def put(self, message: Message, done: Done, *, can_drop: bool = False) -> None:
        """Queue ``message``; ``done(ack)`` is called once its batch is committed. A message
        that ``can_drop`` (QoS0) is dropped instead, and counted, when the queue is full."""
        if can_drop and self._queue.qsize() >= self._max_waiting:
            self.dropped += 1
            now = time.monotonic()
            if self._drop_logged is None or now - self._drop_logged >= _FULL_LOG_EVERY_S:
                self._drop_logged = now
                _LOGGER.warning("intake queue full (%s waiting): QoS0 message on %s dropped (%s so far); "
                                "boards publish telemetry with QoS1", self._max_waiting, message.topic,
                                self.dropped)
            return
        self._queue.put((message, done))

    def on_batch_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after the ``done`` calls of every batch (a transport that acks a
        batch at once), before ``after_batch``."""
        self._batch_end.append(callback)

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + len(self._held)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sen-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in hand; queued messages stay unacknowledged (the broker keeps them)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._release_held()
            batch = self._take()
            if not batch:
                continue
            while not self._stopping.is_set():
                if self._commit(batch):
                    break
                self._stopping.wait(self._backoff.next_delay())

    def _take(self) -> list[tuple[Message, Done]]:
        if self._spool.full:
            self._wait_for_room()
            return []
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        limit = self._max_batch
        if self._spool.max_lines:  # a message brings a line at least
            limit = max(1, min(limit, self._spool.max_lines - self._spool.pending))
        batch = [first]
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _wait_for_room(self) -> None:
        self.full_waits += 1
        now = time.monotonic()
        if self._full_logged is None or now - self._full_logged >= _FULL_LOG_EVERY_S:
            self._full_logged = now
            _LOGGER.warning("spool full (%s lines, limit %s): not taking messages until InfluxDB "
                            "drains it; the broker keeps them", self._spool.depth(),
                            self._spool.max_lines)
        self._stopping.wait(0.2)

    def _commit(self, batch: list[tuple[Message, Done]]) -> bool:
        try:
            acks = self._handler.handle_many([message for message, _ in batch])
        except (SpoolError, RegistryError) as err:
            _LOGGER.error("could not commit %s messages (%s); not acknowledged, retrying",
                          len(batch), err)
            return False
        except Exception:
            _LOGGER.exception("unexpected error committing %s messages; not acknowledged, retrying",
                              len(batch))
            return False
        self._backoff.reset()
        self.batches += 1
        now = time.monotonic()
        for (message, done), ack in zip(batch, acks, strict=True):
            if ack is HOLD:
                message.held_at = message.held_at or now
                self._held.append((message, done))
            else:
                self.committed += 1
                done(ack if isinstance(ack, Ack) else None)
        for callback in self._batch_end:
            callback()
        self._after_batch()
        return True

    def _release_held(self) -> None:
        """Hand held messages in again: their boot may have its anchor now; past HOLD_MAX_S they
        are anchored from themselves (no live message of the boot came: the board is gone)."""
        now = time.monotonic()
        if not self._held or now - self._held_retry < _HELD_RETRY_S:
            return
        self._held_retry = now
        held, self._held = self._held, []
        for message, done in held:
            if now - message.held_at >= HOLD_MAX_S and not message.anchor_anyway:
                message.anchor_anyway = True
                _LOGGER.warning("no live message came in %.0f s for the boot of a message queued on %s: "
                                "its clock anchor is made from it and may be late by the time it waited",
                                HOLD_MAX_S, message.topic)
            self._queue.put((message, done))
