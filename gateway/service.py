"""The gateway service: MQTT in, spool, InfluxDB out, until told to stop.

    run(GatewayOptions(mqtt_url=..., influx_url=..., database=..., spool_dir=...), stop=event)

Start-up never fails because the broker or InfluxDB is away: both are retried in the
background with capped backoff and a one-line error. On ``stop`` the MQTT session is closed
(unacknowledged messages stay with the broker), pending lines are flushed while InfluxDB
answers, and whatever is left stays in the spool for the next start.
"""

from __future__ import annotations

import logging
import threading

from ingest.influx_v1 import InfluxV1
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import Writer

from gateway.handler import Handler
from gateway.mqtt_input import MqttInput
from gateway.options import GatewayOptions
from gateway.registry import Registry
from gateway.rejects import RejectLog

_LOGGER = logging.getLogger(__name__)


def run(options: GatewayOptions, *, stop: threading.Event) -> int:
    """Run the gateway until ``stop`` is set; flush, then return 0."""
    spool = Spool(options.spool_dir)
    registry = Registry(options.spool_dir)
    try:
        influx = InfluxV1(options.influx_url, database=options.database,
                          timeout_s=options.influx_timeout_s)
        writer = Writer(spool, influx, batch_size=options.batch_size,
                        flush_interval_s=options.flush_interval_s,
                        backoff=Backoff(initial_s=0.5, max_s=float(options.reconnect_max_s)))
        rejects = RejectLog(spool)
        handler = Handler(spool=spool, registry=registry, rejects=rejects, on_commit=writer.notify)
        mqtt_input = MqttInput(options, handler)
        _LOGGER.info("gateway starting: %s -> %s database %r, spool %s", options.mqtt_url,
                     options.influx_url, options.database, options.spool_dir)
        writer.start()
        mqtt_input.start()
        try:
            stop.wait()
            _LOGGER.info("gateway stopping")
        finally:
            mqtt_input.stop()
            writer.stop(flush_timeout_s=options.stop_flush_timeout_s)
        received = handler.stats
        written = writer.stats
        _LOGGER.info("gateway stopped: %s messages received, %s readings spooled, %s duplicates, "
                     "%s rejected %s, %s lines written in %s batches, %s set aside, "
                     "%s left in the spool", received.received, received.readings,
                     received.duplicates, received.rejected, rejects.counts, written.written,
                     written.batches, written.set_aside, spool.depth())
    finally:
        registry.close()
        spool.close()
    return 0
