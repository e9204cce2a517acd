"""An in-process gateway for serial tests: SerialInput + the real Intake, Handler, Spool, Registry
and an InfluxDB 1.x writer, wired as `sen gateway run --serial` wires them, without MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.influx_v1 import InfluxV1
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import Writer

from gateway.service.handler import Handler
from gateway.service.intake import Intake
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from gateway.service.serial_input import SerialInput


@dataclass
class SerialGateway:
    serial: SerialInput
    handler: Handler
    spool: Spool
    writer: Writer


@contextmanager
def serial_gateway(ports: str, *, influx_url: str, database: str, spool_dir: Path,
                   scan_interval_s: float = 0.2) -> Iterator[SerialGateway]:
    spool = Spool(spool_dir)
    registry = Registry(spool_dir)
    writer = Writer(spool, InfluxV1(influx_url, database=database), batch_size=500,
                    flush_interval_s=0.2, backoff=Backoff(initial_s=0.2, max_s=1.0))
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool), on_commit=writer.notify)
    intake = Intake(handler, spool)
    serial = SerialInput(intake.put, ports, scan_interval_s=scan_interval_s)
    writer.start()
    intake.start()
    serial.start()
    try:
        yield SerialGateway(serial, handler, spool, writer)
    finally:
        serial.stop()
        intake.stop()
        writer.stop(flush_timeout_s=10)
        registry.close()
        spool.close()
