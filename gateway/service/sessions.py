"""The MQTT sessions of a gateway with receiving processes (``workers``), and what a run with
fewer of them than the last one must take over.

- :func:`worker_options`: worker N is client ``{client_id}-w{N}`` with its spool in
  ``spool_dir/workers/N``; it reads telemetry from ``$share/GROUP/sen/v1/+/+/telemetry`` only.
- :class:`SessionInput`: the MQTT input, plus filters its session drops when it connects (the
  supervisor's session, once a single gateway's, drops the telemetry subscriptions; a retired
  worker's drops its share), :attr:`SessionInput.backlog_done` (what the broker queued for the
  session while it was away has come in).
- :func:`retire`: a worker folder the run has no worker for (``--workers`` went down, or to 1).
  The broker still routes a share of the telemetry to that worker's session while it is away, so
  the session is taken over once: its queued messages committed to the folder's spool and acked,
  its share dropped, the spool written to InfluxDB, then the folder removed. A spool of a worker
  the run does have is written by that worker itself when it starts.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from ingest.errors import IngestError
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import Sink, Writer

from gateway.errors import GatewayError
from gateway.service.acks import Ack
from gateway.service.identity import BootTuple
from gateway.service.handler import Handler
from gateway.service.intake import Intake
from gateway.service.mqtt_input import MqttInput
from gateway.service.options import GatewayOptions
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from gateway.service.topics import TELEMETRY_FILTER

_LOGGER = logging.getLogger(__name__)

WORKERS_DIR = "workers"
STATUS_FILE = "workers.json"  # the supervisor's counters, per worker too (`sen status`)
_BACKLOG_WAIT_S = 35.0  # past the input's own 30 s marker wait: the backlog is in anyway


def shared_filter(options: GatewayOptions) -> str:
    return f"$share/{options.telemetry_group}/{TELEMETRY_FILTER}"


def worker_dir(spool_dir: Path, index: int) -> Path:
    return spool_dir / WORKERS_DIR / str(index)


def worker_options(options: GatewayOptions, index: int) -> GatewayOptions:
    """Worker ``index``'s options: its own client id and spool; no serial ports, no web page."""
    return dataclasses.replace(options, client_id=f"{options.client_id}-w{index}", workers=1,
                               spool_dir=worker_dir(options.spool_dir, index), serial_ports=(), web_port=0)


def leftovers(spool_dir: Path, keep: int) -> list[int]:
    """Indices of worker folders at or past ``keep`` (workers this run does not have)."""
    found = spool_dir / WORKERS_DIR
    if not found.is_dir():
        return []
    return sorted(int(p.name) for p in found.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) >= keep)


class SessionInput(MqttInput):
    def __init__(self, options: GatewayOptions, intake: Intake, *, topics: tuple[str, ...],
                 unsubscribe: tuple[str, ...] = ()) -> None:
        super().__init__(options, intake, topics=topics)
        self._drop = unsubscribe
        self.backlog_done = threading.Event()
        self.acks_for: Callable[[list[BootTuple]], list[Ack | None]] | None = None  # the supervisor's registry's

    def _resolve(self, due: dict[tuple[str, str], Ack | BootTuple]) -> dict[tuple[str, str], Ack]:
        """A boot noted for an ack (the supervisor notes boots, not acks) is asked of ``acks_for``
        only once its ack is due: once a second for a busy device, not once a message."""
        out = super()._resolve(due)
        boots = [(device, key) for device, key in due.items() if not isinstance(key, Ack)]
        if boots and self.acks_for is not None:
            for (device, _), ack in zip(boots, self.acks_for([key for _, key in boots]), strict=True):
                if ack is not None:
                    out[device] = ack
        return out

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Any) -> None:
        if not reason_code.is_failure and self._drop:  # before the marker: what came before it is all
            client.unsubscribe(list(self._drop))
        super()._on_connect(client, userdata, flags, reason_code, properties)
        if not reason_code.is_failure and not flags.session_present:
            self.backlog_done.set()

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        marker = topic == self._marker_topic
        super()._on_publish(topic, payload, mid, qos)
        if marker:
            self.backlog_done.set()


def make_writer(spool: Spool, sink: Sink, options: GatewayOptions) -> Writer:
    """The writer of a gateway's (or a worker's, or a retired worker's) spool, as OPTIONS say."""
    return Writer(spool, sink, batch_size=options.batch_size, flush_interval_s=options.flush_interval_s,
                  in_flight=options.writes_in_flight,
                  backoff=Backoff(initial_s=0.5, max_s=float(options.reconnect_max_s)))


def retire(options: GatewayOptions, index: int, *, registry: Registry,
           make_sink: Callable[[GatewayOptions], Sink], stop: threading.Event) -> bool:
    """Take over worker ``index``'s session and spool for good (see the module); True once its
    folder is gone, False when ``stop`` came first (the next start tries again)."""
    own = worker_options(options, index)
    try:
        spool = Spool(own.spool_dir, max_lines=options.spool_max_lines)
    except IngestError as err:
        _LOGGER.error("worker %s's spool left behind cannot be opened: %s", index, err)
        return False
    _LOGGER.info("worker %s is not part of this run: taking over its session %r and spool (%s lines)",
                 index, own.client_id, spool.depth())
    writer = make_writer(spool, make_sink(options), options)
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool), on_commit=writer.notify)
    inputs: list[SessionInput] = []
    intake = Intake(handler, spool, max_batch=options.max_batch, after_batch=lambda: inputs[0].publish_acks())
    session = SessionInput(own, intake, topics=(), unsubscribe=(shared_filter(options),))
    inputs.append(session)
    done = False
    writer.start()
    intake.start()
    session.start()
    try:
        _wait_backlog(session, stop)
        while intake.waiting and not stop.wait(0.2):  # held messages wait for their anchor
            session.publish_acks()
        done = not stop.is_set() and not intake.waiting
    finally:
        intake.stop()
        session.publish_acks(force=True)
        session.stop()
        while done and spool.depth() and not stop.is_set():
            writer.wait_idle(1.0)
        writer.stop(flush_timeout_s=0 if stop.is_set() else options.stop_flush_timeout_s)
        done = done and spool.depth() == 0
        spool.close()
    if done:
        shutil.rmtree(own.spool_dir, ignore_errors=True)
        _LOGGER.info("worker %s retired: its session's share dropped, its spool written", index)
    return done


def _wait_backlog(session: SessionInput, stop: threading.Event) -> None:
    while not stop.is_set() and not session.connected:
        stop.wait(0.2)
    deadline = time.monotonic() + _BACKLOG_WAIT_S
    while not stop.is_set() and not session.backlog_done.is_set() and time.monotonic() < deadline:
        session.backlog_done.wait(0.2)


def retire_all(options: GatewayOptions, keep: int, *, registry: Registry,
               make_sink: Callable[[GatewayOptions], Sink], stop: threading.Event) -> threading.Thread | None:
    """:func:`retire` every worker folder at or past ``keep``, one after the other, on a thread."""
    stale = leftovers(options.spool_dir, keep)
    if not stale:
        return None

    def run() -> None:
        for index in stale:
            try:
                retire(options, index, registry=registry, make_sink=make_sink, stop=stop)
            except (GatewayError, IngestError, OSError) as err:
                _LOGGER.error("could not retire worker %s (%s); the next start tries again", index, err)

    thread = threading.Thread(target=run, name="sen-retire", daemon=True)
    thread.start()
    return thread
