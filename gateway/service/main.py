"""The gateway service: MQTT in, spool, InfluxDB out, until told to stop.

    run(GatewayOptions(mqtt_url=..., influx_url=..., database=..., spool_dir=...), stop=event)

Start-up never fails because the broker or InfluxDB is away: both are retried in the
background with capped backoff and a one-line error. Every second the device registry is
written to its file and the MQTT watchdog looked at; every ``stats_interval_s`` the
gateway's own counters go to the spool as the ``gateway`` measurement.
On ``stop`` (SIGTERM): the batch in hand is committed and acked, the MQTT session closed
(unacknowledged messages stay with the broker), pending lines flushed while InfluxDB answers
(at most ``stop_flush_timeout_s``); whatever is left stays in the spool for the next start.
With ``workers`` > 1 this process is the :class:`~gateway.service.supervisor.Supervisor` of that
many receiving processes; either way it takes over the folders and sessions of workers an earlier
run had and this one has not (:mod:`gateway.service.sessions`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ingest.detect import AutoSink
from ingest.influx_v1 import InfluxV1
from ingest.lineproto import Point, encode
from ingest.spool import Entry, Spool
from ingest.writer import Sink

from gateway.service.handler import Handler
from gateway.service.intake import Intake
from gateway.service.mqtt_input import MqttInput
from gateway.errors import OptionsError
from gateway.service.options import GatewayOptions
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from gateway.service.sessions import make_writer, retire_all

if TYPE_CHECKING:
    from gateway.service.forking import Started
    from gateway.service.serial_input import SerialInput
    from gateway.web.server import WebServer

_LOGGER = logging.getLogger(__name__)

_TICK_S = 1.0
_PRUNE_EVERY_S = 3600.0


def make_sink(options: GatewayOptions) -> Sink:
    def make(api: str) -> Sink:
        if api == "v2":
            from ingest.influx_v2 import InfluxV2  # influxdb-client (and numpy): 0.3 s, 30 MiB; only for v2

            return InfluxV2(options.influx_url, bucket=options.influx_bucket or options.database,
                            org=options.influx_org, token=options.influx_token,
                            timeout_s=options.influx_timeout_s, compress=options.compress)
        return InfluxV1(options.influx_url, database=options.database,
                        timeout_s=options.influx_timeout_s, compress=options.compress)

    if options.influx_api == "auto":
        return AutoSink(options.influx_url, make, timeout_s=options.influx_timeout_s)
    return make(options.influx_api)


Counters = dict[str, float | int]


class Parts:
    """One gateway's parts; ``handler`` and ``mqtt`` are what a worker and the supervisor change."""

    def __init__(self, options: GatewayOptions, spool: Spool, registry: Registry, *,
                 handler: type[Handler] = Handler,
                 mqtt: Callable[[GatewayOptions, Intake], MqttInput] = MqttInput) -> None:
        self.options = options
        self.spool = spool
        self.registry = registry
        self.writer = make_writer(spool, make_sink(options), options)
        self.rejects = RejectLog(spool)
        self.handler = handler(spool=spool, registry=registry, rejects=self.rejects,
                               on_commit=self.writer.notify)
        self.intake = Intake(self.handler, spool, max_batch=options.max_batch,
                             after_batch=self._after_batch)
        self.mqtt = mqtt(options, self.intake)
        # Serial boards go through the same group commit; each ack goes back on its board's line.
        self.serial: SerialInput | None = None
        if options.serial_ports:  # pyserial and the frames: loaded only for a gateway with serial boards
            from gateway.service.serial_bridge import SerialBridge
            from gateway.service.serial_input import SerialInput

            self.serial = SerialInput(self.intake.put, list(options.serial_ports), baudrate=options.serial_baudrate)
            SerialBridge(self.serial, self.mqtt)  # ota messages to the serial boards, their status to MQTT
        self.merge: Callable[[Counters], Counters] = lambda own: own  # the supervisor adds the workers'

    def _after_batch(self) -> None:
        self.mqtt.publish_acks()

    def counters(self) -> Counters:
        handled, written = self.handler.stats, self.writer.stats
        return {"received": handled.received, "readings": handled.readings,
                "duplicates": handled.duplicates, "rejected": handled.rejected,
                "written": written.written, "set_aside": written.set_aside,
                "fields_set_aside": written.fields_set_aside,
                "dead_letters_dropped": self.spool.dead_letters_dropped,
                "write_failures": written.failures, "spool_depth": self.spool.depth(),
                "write_latency_ms": round(written.last_latency_ms, 3),
                "watchdog_trips": self.mqtt.watchdog_trips,
                "acks_published": self.mqtt.acks_published, "spool_full_waits": self.intake.full_waits,
                "qos0_dropped": self.intake.dropped, "input_waits": self.mqtt.room_waits,
                "input_peak_waiting": self.mqtt.peak_waiting}

    def report(self) -> None:
        point = Point(measurement="gateway", tags={"gateway": self.options.client_id},
                      fields=self.merge(self.counters()), ts_ms=time.time_ns() // 1_000_000)
        self.spool.commit([Entry(line=encode(point))])
        self.writer.notify()

    def tick(self, stop: threading.Event) -> None:
        next_report = time.monotonic() + self.options.stats_interval_s
        next_prune = time.monotonic()
        while not stop.wait(_TICK_S):
            try:
                self.mqtt.publish_acks()  # acks held back by the per-device interval
                self.registry.flush()
                self.mqtt.check_watchdog()
                if time.monotonic() >= next_report:
                    next_report += self.options.stats_interval_s
                    self.report()
                if time.monotonic() >= next_prune:  # boots long gone (a deep sleeper makes many)
                    next_prune = time.monotonic() + _PRUNE_EVERY_S
                    self.registry.prune()
            except Exception:
                _LOGGER.exception("periodic bookkeeping failed; trying again in %s s", _TICK_S)


def _start_web(options: GatewayOptions) -> WebServer | None:
    """The opt-in web page; it reads the registry file and InfluxQL, like `sen web`."""
    if not options.web_port:
        return None
    from gateway.web.server import WebServer, influx_query, registry_devices  # only when asked for

    try:
        server = WebServer(options.web_host, options.web_port, registry_devices(options.spool_dir),
                           influx_query(options.influx_url, options.database, token=options.influx_token or None))
    except OSError as err:  # port taken, address not ours
        raise OptionsError(f"web_port: cannot serve on {options.web_host}:{options.web_port}: "
                           f"{err.strerror or err}") from None
    return server.start()


# Python's collector walks every young container after each 700 new ones, and now and then all
# of them: the gateway's live objects (modules, registry, queues) made a backlog drain spend ~7%
# of its CPU there (0.09 s of ~1.2 s for 10,000 messages of ten readings; 0.03 s so). What
# start-up made lives as long as the process, so it is frozen out of the walks; the messages'
# objects are freed by their reference counts (they make no cycles), so young collections can
# come less often; what cyclic garbage there is (rare here) waits longer for its collection.
_GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Once a process's parts are built and started (the gateway's, a worker's)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def run(options: GatewayOptions, *, stop: threading.Event, first: Sequence[Started] = ()) -> int:
    """Run the gateway until ``stop`` is set; flush, then return 0. ``first``: workers forked already
    (:func:`gateway.service.forking.fork_first`), for ``--workers N``."""
    spool = Spool(options.spool_dir, max_lines=options.spool_max_lines)
    registry = Registry(options.spool_dir)
    try:
        supervisor = None
        if options.worker_count > 1:  # the telemetry is the workers'; this process supervises them
            from gateway.service.supervisor import Supervisor, supervisor_input

            parts = Parts(options, spool, registry, mqtt=supervisor_input)
            supervisor = Supervisor(options, parts, registry, first)
            parts.merge = supervisor.merged
        else:
            parts = Parts(options, spool, registry)
        web_server = _start_web(options)  # first: a port already taken stops us before anything runs
        _LOGGER.info("gateway starting: %s -> %s database %r, spool %s", options.mqtt_url,
                     options.influx_url, options.database, options.spool_dir)
        ticking = threading.Event()
        ticker = threading.Thread(target=parts.tick, args=(ticking,), name="sen-tick", daemon=True)
        parts.writer.start()
        parts.intake.start()
        parts.mqtt.start()
        if parts.serial is not None:
            parts.serial.start()
        ticker.start()
        keep = options.worker_count if supervisor is not None else 0
        tune_gc()
        retiring = retire_all(options, keep, registry=registry, make_sink=make_sink, stop=ticking)
        try:
            if supervisor is None:
                stop.wait()
            else:
                supervisor.run(stop)
            _LOGGER.info("gateway stopping")
        finally:
            if web_server is not None:
                web_server.stop()
            if parts.serial is not None:
                parts.serial.stop()
            if supervisor is not None:  # the workers commit, ack and flush; their last calls fold in
                supervisor.stop()
            parts.intake.stop()
            parts.mqtt.publish_acks(force=True)
            parts.mqtt.stop()
            ticking.set()
            ticker.join()
            if retiring is not None:
                retiring.join()
            parts.report()
            parts.writer.stop(flush_timeout_s=options.stop_flush_timeout_s)
        _LOGGER.info("gateway stopped: %s; rejects by reason %s",
                     ", ".join(f"{k} {v}" for k, v in parts.merge(parts.counters()).items()),
                     parts.rejects.counts)
    finally:
        registry.close()
        spool.close()
    return 0
