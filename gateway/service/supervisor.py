"""``sen gateway run --workers N``: N receiving processes under one supervisor.

The supervisor is the gateway's main process (:func:`gateway.service.main.run`): its MQTT
session (``client_id``) subscribes to status and retained acks only (and drops the telemetry
subscriptions a single gateway's session had, after taking what they queued), it owns the device
registry, publishes the end-to-end acks, reads the serial boards, serves the web page and writes
the ``gateway`` measurement; the workers (:mod:`gateway.service.worker`) take the telemetry.

- Each worker sends, per committed batch, the registry calls its handler made ("these seqs of
  this boot were committed"; "ack this boot"): :meth:`Supervisor.fold` replays them on the
  registry, so an ack is the contiguous mark of the union of what every worker committed. One
  thread reads every worker's pipe (one fold at a time: no second reader to wait on the lock);
  a batch's notes go to the registry under one lock, and each boot to ack once: its ack is
  asked of the registry only when it is published (once a second for a busy device).
- Readings are counted here, as the seqs of a boot no worker had told of since the supervisor
  started (the boot's first message: as its worker's spool counted them): exact whichever worker
  committed them. A reading two workers both committed (a board re-sent it, and the copy went to
  the other worker) is in InfluxDB once (same point) and counted once, a duplicate the second
  time; one a worker committed and died before telling is counted when it comes again.
- A worker that exits while the gateway runs (killed, crashed) is started again after a
  back-off (0.5 s, doubling to ``reconnect_max_s``; at once again after it ran 30 s), logged.
  What it committed but had not acked the broker delivers again to its session: its spool
  skips it and the supervisor hears of it then.
- The other counters: each worker's, every second (a killed worker's last second is lost);
  those of its ended runs are kept, so they only grow. ``spool_dir/workers.json`` holds them per
  worker, for ``sen status``.
- Stop: SIGTERM to every worker (each commits, acks and flushes its spool), then the
  supervisor's own stop (acks, the last counters, its spool).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.process import BaseProcess
from typing import Any

from gateway.service.devices import BootState
from gateway.service.forking import Started, later_context, start
from gateway.service.identity import BootTuple
from gateway.service.intake import Intake
from gateway.service.main import Counters, Parts
from gateway.service.options import GatewayOptions
from gateway.service.registry import Note, Registry
from gateway.service.sessions import STATUS_FILE, SessionInput, shared_filter
from gateway.service.topics import ACK_FILTER, STATUS_FILTER, TELEMETRY_FILTER
from gateway.service.worker import AckWanted

_LOGGER = logging.getLogger(__name__)

_POLL_S = 0.2
_RESTART_MIN_S = 0.5
_HEALTHY_S = 30.0  # a worker that ran this long is started again at once
_STOP_GRACE_S = 30.0  # past stop_flush_timeout_s, before a worker that does not stop is killed
_LATEST = ("spool_depth",)  # gauges: the running workers' values, summed
_HIGHEST = ("write_latency_ms", "input_peak_waiting")  # the highest of any worker
_FOLDED = ("received", "readings", "duplicates")  # counted by fold(), not taken from the workers
_BOOTS_NOTED = 50_000  # boots whose told seqs are kept (for counting) at most


class _SupervisorInput(SessionInput):
    def check_watchdog(self) -> None:  # status and acks are quiet by nature; the workers watch
        return None


def supervisor_input(options: GatewayOptions, intake: Intake) -> SessionInput:
    """The supervisor's MQTT input: status and retained acks; the telemetry filters dropped."""
    return _SupervisorInput(options, intake, topics=(STATUS_FILTER, ACK_FILTER),
                            unsubscribe=(TELEMETRY_FILTER, shared_filter(options)))


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None  # the supervisor's end of its pipe, until read to the end
        self.drained = threading.Event()  # set once its pipe was read to the end
        self.counters: Counters = {}  # the running process's latest
        self.ended: Counters = {}  # summed over its ended runs
        self.restarts = 0
        self.failures = 0
        self.started = 0.0
        self.due = 0.0  # monotonic time of the next start


class Supervisor:
    def __init__(self, options: GatewayOptions, parts: Parts, registry: Registry,
                 first: Sequence[Started] = ()) -> None:
        self._options = options
        self._parts = parts
        self._registry = registry
        assert isinstance(parts.mqtt, SessionInput)
        parts.mqtt.acks_for = registry.acks_for
        self._workers = [_Worker(i) for i in range(options.worker_count)]
        self._lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._stopping = False
        self._messages = self._readings = self._duplicates = 0  # telemetry committed by the workers
        self._told: dict[BootTuple, BootState] = {}  # per boot, the seqs the workers told of
        self._wake_r, self._wake_w = Pipe(duplex=False)  # a new pipe for the reader to read
        self._reader = threading.Thread(target=self._read, name="sen-from-workers", daemon=True)
        for worker, (process, conn) in zip(self._workers, first, strict=False):  # forked by `sen gateway run`
            self._adopt(worker, process, conn)

    # -- the workers' lives ----------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Start the workers and keep them running until ``stop``; then stop them."""
        _LOGGER.info("starting %s workers on %s", len(self._workers), shared_filter(self._options))
        self._reader.start()
        next_status = 0.0
        while True:
            for worker in self._workers:
                self._look_after(worker)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + 1.0
                self._write_status()
            if stop.wait(_POLL_S):
                break
        self.stop()

    def _look_after(self, worker: _Worker) -> None:
        now = time.monotonic()
        process = worker.process
        if process is not None and not process.is_alive():
            process.join()
            worker.drained.wait(timeout=5.0)  # what it sent before it died is folded first
            ran = now - worker.started
            worker.failures = 0 if ran >= _HEALTHY_S else worker.failures + 1
            delay = 0.0 if not worker.failures else min(float(self._options.reconnect_max_s),
                                                        _RESTART_MIN_S * 2 ** (worker.failures - 1))
            worker.process, worker.due = None, now + delay
            _LOGGER.warning("worker %s (pid %s) exited with code %s after %.1f s; starting it again in %.1f s",
                            worker.index, process.pid, process.exitcode, ran, delay)
            worker.restarts += 1
        if worker.process is None and now >= worker.due:
            try:
                self._start(worker)
            except OSError as err:  # no process to be had (memory, process limit): later
                worker.due = now + float(self._options.reconnect_max_s)
                _LOGGER.error("cannot start worker %s (%s); trying again in %s s", worker.index, err,
                              self._options.reconnect_max_s)

    def _start(self, worker: _Worker) -> None:
        self._adopt(worker, *start(later_context(), self._options, worker.index))

    def _adopt(self, worker: _Worker, process: BaseProcess, ours: Connection) -> None:
        with self._lock:
            worker.process, worker.started, worker.conn = process, time.monotonic(), ours
            worker.drained.clear()
        self._wake_w.send_bytes(b"")
        _LOGGER.info("worker %s started (pid %s)", worker.index, process.pid)

    def _read(self) -> None:
        """Every worker's pipe, in one thread: one fold at a time, no thread to contend with."""
        while True:
            with self._lock:
                pipes = {w.conn: w for w in self._workers if w.conn is not None}
            if self._stopping and not pipes:
                return
            ready = wait([self._wake_r, *pipes])
            if self._wake_r in ready:
                self._wake_r.recv_bytes()
            for conn, worker in pipes.items():
                if conn in ready:
                    self._take(worker, conn)

    def _take(self, worker: _Worker, conn: Connection) -> None:
        try:
            kind, body = conn.recv()
            if kind == "calls":
                self.fold(body)
            else:
                with self._lock:
                    worker.counters = body
            return
        except (EOFError, OSError):
            pass
        except Exception:
            _LOGGER.exception("worker %s: cannot read what it sent; it is stopped and started again", worker.index)
            if worker.process is not None:
                worker.process.kill()
        conn.close()
        with self._lock:
            for key, value in worker.counters.items():
                if key not in _LATEST and key not in _HIGHEST:
                    worker.ended[key] = worker.ended.get(key, 0) + value
            worker.counters, worker.conn = {}, None
            worker.drained.set()

    def stop(self) -> None:
        """SIGTERM to every worker, and wait for each to commit, ack and flush (then kill it)."""
        if self._stopping:
            return
        self._stopping = True
        running = [w for w in self._workers if w.process is not None]
        for worker in running:
            assert worker.process is not None
            worker.process.terminate()
        deadline = time.monotonic() + self._options.stop_flush_timeout_s + _STOP_GRACE_S
        for worker in running:
            assert worker.process is not None
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _LOGGER.warning("worker %s did not stop in time: killed", worker.index)
                worker.process.kill()
                worker.process.join()
            worker.drained.wait(timeout=5.0)
        self._wake_w.send_bytes(b"")  # the reader ends: no pipe is left
        self._write_status()

    # -- what the workers send -------------------------------------------------------------
    def fold(self, calls: tuple[list[Note], list[AckWanted]]) -> None:
        """Replay a worker's registry calls of one batch; queue the acks they give. ``calls`` are
        the supervisor's (just unpickled): a note counted otherwise than its worker's spool
        counted it is replaced in its list."""
        mqtt = self._parts.mqtt
        assert isinstance(mqtt, SessionInput)
        notes, wanted = calls
        with self._fold_lock:
            told = self._told
            readings = duplicates = 0
            for i, note in enumerate(notes):
                key, seqs, added, again = note[0], note[1], note[2], note[3]
                boot = told.get(key)
                if boot is not None and len(seqs) == 1 and not boot.gaps and seqs[0] == boot.highest + 1:
                    boot.highest = seqs[0]  # the next seq of a boot told of before: the usual
                    fresh = 1
                else:
                    fresh = self._fresh(key, seqs, added)
                if fresh != added:  # counted as no worker's spool could count it
                    again = max(0, added + again - fresh)
                    notes[i] = (key, seqs, fresh, again, *note[4:])
                readings += fresh
                duplicates += again
            self._readings += readings
            self._duplicates += duplicates
            self._messages += len(notes)
            self._registry.note_many(notes)
            self._registry.remember_anchors(wanted)
            # Each boot once, in the order of its last mention: a device's latest word wins.
            boots = list(dict.fromkeys(key for key, _ in reversed(wanted)))[::-1]
        mqtt.note_acks(boots)  # each boot's ack is asked of the registry when it is published
        mqtt.publish_acks()

    def _fresh(self, key: BootTuple, seqs: list[int], added: int) -> int:
        told = self._told.get(key)
        if told is None:
            if len(self._told) >= _BOOTS_NOTED:
                self._told.clear()
            told = self._told[key] = BootState(boot=key[3], fid=key[2])
            told.note(seqs)
            return added
        return told.take(seqs)

    def merged(self, own: Counters) -> Counters:
        """The supervisor's counters with every worker's (see the module)."""
        total: dict[str, Any] = dict(own)
        with self._lock:
            for worker in self._workers:
                for source in (worker.ended, worker.counters):
                    for key, value in source.items():
                        if key in _HIGHEST:
                            total[key] = max(total.get(key, 0), value)
                        elif key not in _FOLDED:
                            total[key] = total.get(key, 0) + value
        with self._fold_lock:  # the workers' rejects were received too
            total["received"] = total.get("received", 0) + self._messages + total.get("rejected", 0) \
                - own.get("rejected", 0)
            total["readings"] = total.get("readings", 0) + self._readings
            total["duplicates"] = total.get("duplicates", 0) + self._duplicates
        with self._lock:
            total["workers"] = len(self._workers)
            total["worker_restarts"] = sum(w.restarts for w in self._workers)
        return total

    def _write_status(self) -> None:
        """``workers.json``: the merged counters and each worker's, for ``sen status``."""
        with self._lock:
            workers = [{"index": w.index, "pid": w.process.pid if w.process else None,
                        "running": bool(w.process and w.process.is_alive()), "restarts": w.restarts,
                        **w.ended, **{k: v if k in _LATEST or k in _HIGHEST else w.ended.get(k, 0) + v
                                      for k, v in w.counters.items()}} for w in self._workers]
        doc = {"gateway": self._options.client_id, "updated_ms": time.time_ns() // 1_000_000,
               "total": self.merged(self._parts.counters()), "workers": workers}
        path = self._options.spool_dir / STATUS_FILE
        try:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(doc) + "\n")
            os.replace(temporary, path)
        except OSError as err:
            _LOGGER.warning("cannot write %s: %s", path, err)
