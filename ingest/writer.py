"""The writer thread: drains the spool to InfluxDB in batches, by size and by age.

A write goes out as soon as the writer is idle: nothing is in flight, so whatever the spool
holds (up to ``batch_size`` lines) is written at once, and a reading at low load never waits
for a batch to fill. While a write is on its way, lines pile up, and the next write takes them
together: under load batches grow and writes stay few. In a flood of one-line rows (a tenth
of a batch came during a write) the next batch fills a little longer, at most 0.1 s
(:mod:`ingest.gather`: InfluxDB's CPU per point falls with fewer, larger writes). ``in_flight`` > 1: other
lanes (threads) write too while a full batch waits behind the writes on their way (a backlog;
never in an outage), so InfluxDB parses them on more cores. A batch leaves the spool after a
2xx. A refused one (400/413) is halved until the refused lines are isolated and set aside as
dead letters (a line refused for a field type conflict loses only that field:
:mod:`ingest.refusals`); every other failure keeps the batch and retries with capped, jittered
backoff. InfluxDB 1.x may have written part of a refused batch: the parts are
written again (a point is kept once per series and timestamp), and each line is counted
once, when the write that settles it answered.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ingest.errors import InfluxBadData, InfluxDatabaseMissing, InfluxUnavailable, OptionsError, SpoolError
from ingest.gather import gather
from ingest.refusals import settle_lines
from ingest.retry import Backoff, Outage
from ingest.spool import Batch, Refused, Spool

_LOGGER = logging.getLogger(__name__)

_KEY_PRUNE_EVERY_S = 600.0


class Sink(Protocol):
    """Where batches go: :class:`~ingest.influx_v1.InfluxV1`, :class:`~ingest.influx_v2.InfluxV2`,
    :class:`~ingest.detect.AutoSink` (which wraps one of them) or a test double."""

    def write(self, payload: bytes) -> None: ...

    def create_database(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class WriterStats:
    """``written``: lines in InfluxDB (a line written without a refused field included);
    ``set_aside``: lines refused whole; ``fields_set_aside``: fields split off written lines
    (each kept as a dead letter of its own); ``written + set_aside`` lines left the spool."""

    written: int
    batches: int
    set_aside: int
    failures: int
    last_latency_ms: float
    fields_set_aside: int = 0


class Writer:
    """Drains ``spool`` into ``sink`` on its own thread; :meth:`notify` after each commit."""

    def __init__(self, spool: Spool, sink: Sink, *, batch_size: int = 500,
                 flush_interval_s: float = 1.0, backoff: Backoff | None = None,
                 keys_ttl_s: float = 48 * 3600.0, in_flight: int = 1) -> None:
        if batch_size < 1 or flush_interval_s < 0 or in_flight < 1:
            raise OptionsError(f"bad writer options: batch_size={batch_size}, "
                               f"flush_interval_s={flush_interval_s}, in_flight={in_flight}")
        self._spool = spool
        self._sink = sink
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._backoff = backoff or Backoff()
        self._keys_ttl_s = keys_ttl_s
        self._wakes = [threading.Event() for _ in range(in_flight)]  # one per lane
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._flight: dict[int, Batch] = {}  # lane -> its batch on the way
        self._claims = threading.Lock()  # taking a batch, and what is in flight
        self._counts = threading.Lock()  # the counters
        self._flush_deadline = 0.0
        self._written = self._batches = self._set_aside = self._fields_set_aside = 0
        self._outage = Outage()
        self._last_prune: float | None = None
        self._last_latency_ms = 0.0

    # -- control ---------------------------------------------------------------------
    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, args=(0,), name="sen-writer", daemon=True)]
        self._threads[0].start()  # it starts the other lanes once it asked for the database

    def notify(self) -> None:
        """New lines were committed: look at the spool again (lane 0 wakes the others, _claim)."""
        self._wakes[0].set()

    def stop(self, *, flush_timeout_s: float = 10.0) -> None:
        """Write what is pending (while InfluxDB answers, at most ``flush_timeout_s``), stop, and
        close the sink (if it has ``close``)."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._stopping.set()
        for wake in self._wakes:
            wake.set()
        while self._threads:  # lane 0 first: the others are in the list once it has ended
            self._threads.pop(0).join()
        close = getattr(self._sink, "close", None)  # its kept connection (the sink is the writer's now)
        if close is not None:
            close()
        left = self._spool.depth()
        if left:
            _LOGGER.warning("writer stopped with %s lines still in the spool; "
                            "they are written on the next start", left)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until the spool is empty (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._spool.depth():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
        return True

    @property
    def stats(self) -> WriterStats:
        return WriterStats(written=self._written, batches=self._batches,
                           set_aside=self._set_aside, failures=self._outage.failures,
                           last_latency_ms=self._last_latency_ms, fields_set_aside=self._fields_set_aside)

    # -- the loop --------------------------------------------------------------------
    def _run(self, lane: int) -> None:
        if lane == 0:
            _LOGGER.info("writer started (batch_size=%s, flush_interval_s=%s, writes in flight %s)",
                         self._batch_size, self._flush_interval_s, len(self._wakes))
            self._create_database()
            for other in range(1, len(self._wakes)):
                self._threads.append(threading.Thread(target=self._run, args=(other,), name=f"sen-writer-{other + 1}",
                                                      daemon=True))
                self._threads[-1].start()
        while True:
            try:
                if not self._step(lane):
                    return
            except SpoolError:
                _LOGGER.exception("spool failed; retrying with backoff")
                if self._stopping.wait(self._backoff.next_delay()):
                    return

    def _step(self, lane: int) -> bool:
        """One turn of LANE's loop; False when its thread should end."""
        stopping = self._stopping.is_set()
        if stopping and time.monotonic() >= self._flush_deadline:
            return False
        batch = self._claim(lane)
        if batch is None:
            if lane == 0:
                self._spool.settle()  # what delete() listed (the lock was taken): no delete may come now
                with self._idle:
                    self._idle.notify_all()
            if stopping:
                return False
            if lane == 0:
                self._prune_keys()
            self._sleep(lane, self._flush_interval_s or 1.0)
            return True
        try:
            delivered = self._deliver(batch)
        finally:
            with self._claims:
                del self._flight[lane]
        if delivered and not lane and not stopping:
            gather(self._waiting, self._batch_size, self._stopping, lines_per_row=len(batch) / len(batch.ids))
        if not delivered:
            if stopping or lane:  # lane 0 retries; the others wait for it to get through (_claim)
                return not stopping
            delay = self._backoff.next_delay()
            asked = self._outage.take_retry_after()
            if asked is not None:  # the server said when: honour it
                delay = max(delay, asked)
            self._stopping.wait(delay)
        return True

    def _claim(self, lane: int) -> Batch | None:
        """The oldest lines no write has on its way, for LANE. Lane 0 takes whatever waits (a
        reading at low load goes at once); another lane only a full batch behind the writes in
        flight while InfluxDB answers (:meth:`_behind`): at low load nothing changes."""
        with self._claims:
            flying = self._flight.values()
            if lane and not self._behind():
                return None
            batch = self._spool.oldest(self._batch_size, skip=[(b.ids[0], b.ids[-1]) for b in flying])
            if batch is not None:
                self._flight[lane] = batch
            behind = lane == 0 and batch is not None and len(self._wakes) > 1 and self._behind()
        if behind:  # woken only then: a thread woken at every commit slowed the intake (the GIL)
            for wake in self._wakes[1:]:
                wake.set()
        return batch

    def _waiting(self) -> int:
        with self._claims:
            return self._unclaimed()

    def _unclaimed(self) -> int:
        """Lines in the spool that no write has on its way (under _claims)."""
        return self._spool.pending - sum(map(len, self._flight.values()))

    def _behind(self) -> bool:
        """A full batch waits behind the writes in flight while InfluxDB answers (under _claims)."""
        return self._outage.since is None and bool(self._flight) and self._unclaimed() >= self._batch_size

    def _sleep(self, lane: int, seconds: float) -> None:
        self._wakes[lane].wait(seconds)
        self._wakes[lane].clear()

    def _deliver(self, batch: Batch) -> bool:
        """Write ``batch``; False when InfluxDB is unavailable (the batch stays spooled)."""
        started = time.monotonic()
        try:
            self._sink.write(batch.payload())
        except InfluxDatabaseMissing as err:
            _LOGGER.warning("%s; creating it", err)
            return self._create_database()
        except InfluxBadData as err:
            return self._narrow(batch, err)
        except InfluxUnavailable as err:
            self._on_outage(err)
            return False
        self._last_latency_ms = (time.monotonic() - started) * 1000.0
        self._spool.delete(batch.ids, lines=len(batch))
        with self._counts:
            self._written += len(batch)
            self._batches += 1
        self._on_recovery()
        _LOGGER.debug("wrote batch of %s lines (%s written in total, %s pending)",
                     len(batch), self._written, self._spool.pending)
        return True

    def _narrow(self, batch: Batch, err: InfluxBadData) -> bool:
        rows = len(batch.ids)
        if rows == 1:
            return self._narrow_row(batch, err)
        half = rows // 2
        return self._deliver(batch.rows(0, half)) and self._deliver(batch.rows(half, rows))

    def _narrow_row(self, batch: Batch, err: InfluxBadData) -> bool:
        """One row was refused: its lines one by one; of a refused line, what InfluxDB takes is
        written (:func:`~ingest.refusals.salvage`: all but a conflicting field) and the rest set aside."""
        try:
            aside = settle_lines(self._sink, batch.lines, err)
        except InfluxUnavailable as down:  # the row stays; lines written again are harmless
            self._on_outage(down)
            return False
        self._spool.set_aside_lines(batch.ids[0], [Refused(line=line, reason=f"influx_http_{bad.status}",
                                                           detail=bad.message) for line, bad, _ in aside])
        whole = sum(1 for *_, kind in aside if kind == "line")
        with self._counts:
            self._set_aside += whole
            self._fields_set_aside += len(aside) - whole
            self._written += len(batch) - whole
        for line, refusal, kind in aside:
            _LOGGER.warning("InfluxDB refused a %s, set aside as dead letter: %s (%s)",
                            kind, line[:200], refusal.message)
        return True

    def _create_database(self) -> bool:
        try:
            self._sink.create_database()
        except InfluxUnavailable as err:
            self._on_outage(err)
            return False
        return True

    def _on_outage(self, err: InfluxUnavailable) -> None:
        if self._outage.failed(err.retry_after_s):
            _LOGGER.error("%s; retrying with backoff, %s lines kept in the spool",
                          err, self._spool.depth())
        else:
            _LOGGER.debug("still failing: %s", err)

    def _on_recovery(self) -> None:
        self._backoff.reset()
        lasted = self._outage.ended()
        if lasted is not None:
            _LOGGER.info("InfluxDB answers again after %.1f s", lasted)

    def _prune_keys(self) -> None:
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < _KEY_PRUNE_EVERY_S:
            return
        self._last_prune = now
        cutoff_ms = int((time.time() - self._keys_ttl_s) * 1000)
        dropped = self._spool.forget_keys_before(cutoff_ms)
        if dropped:
            _LOGGER.debug("forgot %s idempotency keys older than %s s", dropped, self._keys_ttl_s)
        self._spool.trim_dead_letters()  # expire old ones even when no new one comes
