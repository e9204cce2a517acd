"""A receiving process of ``sen gateway run --workers N`` (started by :mod:`gateway.service.supervisor`).

Worker N is the single gateway's parts (:class:`gateway.service.main.Parts`) with three changes:

- its MQTT session (``{client_id}-wN``) subscribes to the shared telemetry filter only
  (``$share/GROUP/sen/v1/+/+/telemetry``), and its spool is ``spool_dir/workers/N``, written to
  InfluxDB by its own writer; a spool a killed worker left is written when it starts again;
- its registry is :class:`WorkerRegistry`: clock anchors are the shared registry file's
  ``anchors`` table (``INSERT OR IGNORE`` in an IMMEDIATE transaction: two workers that see a new
  boot at once store one anchor and both read it), and what the handler tells the registry about
  readings is sent to the supervisor instead, which owns the device state and the acks;
- its handler (:class:`WorkerHandler`) sends those calls after the spool commit and before any
  PUBACK: a reading the broker counts as delivered has reached the supervisor, and one a worker
  died holding is delivered to it again and counted then.

Every second it sends its counters; it stops on SIGTERM, SIGINT or SIGHUP (committing, acking and
flushing as the single gateway does) and, without flushing, when the supervisor's end of the pipe
closes (the supervisor was killed: a new one starts its own workers).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.spool import Spool

from gateway.errors import RegistryError
from gateway.service.acks import Ack
from gateway.service.handler import Handler, Message, _Hold
from gateway.service.identity import BootTuple
from gateway.service.options import GatewayOptions
from gateway.service.registry import Note, Registry
from gateway.service.sessions import SessionInput, shared_filter, worker_options
from gateway.service.stopping import stop_event

_LOGGER = logging.getLogger(__name__)

_TICK_S = 1.0
AckWanted = tuple[BootTuple, int | None]  # a boot to ack, with the anchor this worker knows for it


class WorkerRegistry(Registry):
    """The registry file's anchors; device state and acks are the supervisor's (see the module)."""

    def __init__(self, directory: Path, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()  # the intake thread sends calls, the main thread counters
        self._notes: list[Note] = []
        self._acks: list[AckWanted] = []
        super().__init__(directory)

    def _load(self) -> None:  # the devices are the supervisor's
        return None

    def flush(self) -> None:
        return None

    def note_many(self, notes: Iterable[Note]) -> None:
        # Keys cross the pipe as plain tuples: a BootKey pickles through Python code (1 µs a note).
        self._notes += [((*note[0],), *note[1:]) for note in notes]

    def acks_for(self, keys: Iterable[BootTuple]) -> list[Ack | None]:
        anchors = self._anchors
        wanted: list[AckWanted] = [((*key,), anchors.get(key)) for key in keys]
        self._acks += wanted
        return [None] * len(wanted)  # the supervisor publishes them

    def drop_calls(self) -> None:
        self._notes, self._acks = [], []

    def send_calls(self) -> None:
        if self._notes or self._acks:
            calls, self._notes, self._acks = (self._notes, self._acks), [], []
            try:
                self.send(("calls", calls))
            except OSError as err:  # the supervisor is gone: nothing may be acked
                raise RegistryError(f"cannot reach the supervisor: {err}") from err

    def send(self, message: tuple[str, object]) -> None:
        with self._send_lock:
            self._conn.send(message)


class WorkerHandler(Handler):
    def handle_many(self, messages: Sequence[Message]) -> list[Ack | _Hold | None]:
        registry = self._registry
        assert isinstance(registry, WorkerRegistry)
        registry.drop_calls()  # a batch that failed before: it is handled again whole
        acks = super().handle_many(messages)
        registry.send_calls()
        return acks


def run_worker(options: GatewayOptions, index: int, conn: Connection, log_level: int) -> None:
    """The worker process: ``options`` are the gateway's; ``conn`` its end of the supervisor's pipe."""
    logging.basicConfig(level=log_level, stream=sys.stderr, force=True,  # a fork has the supervisor's
                        format=f"%(asctime)s %(levelname)-7s w{index} %(name)s: %(message)s")
    stop = stop_event((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))  # whichever thread takes it
    from gateway.service.main import Parts, tune_gc  # here: main imports the supervisor, which imports this

    own = worker_options(options, index)
    orphaned = threading.Event()
    spool = Spool(own.spool_dir, max_lines=options.spool_max_lines)
    registry = WorkerRegistry(options.spool_dir, conn)  # the shared registry file: its anchors
    try:
        parts = Parts(own, spool, registry, handler=WorkerHandler,
                      mqtt=lambda o, intake: SessionInput(o, intake, topics=(shared_filter(options),)))
        parts.writer.start()
        parts.intake.start()
        parts.mqtt.start()
        threading.Thread(target=_watch_supervisor, args=(conn, stop, orphaned), daemon=True).start()
        tune_gc()
        while not stop.wait(_TICK_S):
            parts.mqtt.check_watchdog()
            try:
                registry.send(("counters", parts.counters()))
            except OSError:
                orphaned.set()
                stop.set()
        parts.intake.stop()
        parts.mqtt.stop()
        parts.writer.stop(flush_timeout_s=0 if orphaned.is_set() else options.stop_flush_timeout_s)
        try:
            registry.send(("counters", parts.counters()))
        except OSError:
            pass
    finally:
        registry.close()
        spool.close()


def _watch_supervisor(conn: Connection, stop: threading.Event, orphaned: threading.Event) -> None:
    """The supervisor sends nothing; its end closing (it died) stops this worker."""
    try:
        while not stop.is_set():
            if conn.poll(0.5):
                conn.recv()
    except (EOFError, OSError):
        _LOGGER.warning("the supervisor is gone: stopping without flushing (the next gateway writes the spool)")
        orphaned.set()
        stop.set()
