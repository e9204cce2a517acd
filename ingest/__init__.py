"""Sen ingest: the durable spool between the gateway and InfluxDB.

The gateway commits line-protocol lines to the :class:`~ingest.spool.Spool`; the
:class:`~ingest.writer.Writer` drains it in batches to InfluxDB and deletes a batch only
after InfluxDB answered 2xx. Nothing here knows about MQTT, serial ports or devices.
"""

from ingest.errors import (
    IngestError,
    InfluxBadData,
    InfluxDatabaseMissing,
    InfluxError,
    InfluxUnavailable,
    LineProtocolError,
    OptionsError,
    SpoolError,
)

__all__ = [
    "IngestError",
    "InfluxBadData",
    "InfluxDatabaseMissing",
    "InfluxError",
    "InfluxUnavailable",
    "LineProtocolError",
    "OptionsError",
    "SpoolError",
]
