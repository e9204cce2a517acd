"""Decoded telemetry → line-protocol spool entries, on the InfluxDB schema of DESIGN.md.

- ``telemetry``: tags site, device, board; a float field per metric, integer fields seq and
  boot; time = the reading's ``ts``, or ``anchor + up`` for uptime-only readings.
- ``device_diag``: tags site, device; fields from ``d`` (numbers as floats, so a field keeps
  one type whatever a firmware sends); time = ``anchor + envelope up`` when anchored, else
  the newest reading's time, else the receive time.

Each reading's spool key is (device, boot, seq), so a redelivered reading is spooled once.
"""

from __future__ import annotations

from ingest.lineproto import FieldValue, Point, encode
from ingest.spool import Entry

from gateway.decode import Reading, Telemetry


class AnchorMissing(ValueError):
    """An uptime-only reading reached :func:`to_entries` without an anchor."""


def reading_time(reading: Reading, anchor_ms: int | None) -> int:
    if reading.ts_ms is not None:
        return reading.ts_ms
    if anchor_ms is None or reading.up_ms is None:
        raise AnchorMissing(f"reading seq {reading.seq} has only 'up' and no anchor")
    return anchor_ms + reading.up_ms


def reading_key(telemetry: Telemetry, reading: Reading) -> str:
    return f"r/{telemetry.device}/{telemetry.boot}/{reading.seq}"


def to_entries(telemetry: Telemetry, *, anchor_ms: int | None, received_ms: int) -> list[Entry]:
    tags = {"site": telemetry.site, "device": telemetry.device, "board": telemetry.board}
    entries: list[Entry] = []
    newest: int | None = None
    for reading in telemetry.readings:
        ts = reading_time(reading, anchor_ms)
        newest = ts if newest is None else max(newest, ts)
        fields: dict[str, FieldValue] = dict(reading.metrics)
        fields["seq"] = reading.seq
        fields["boot"] = telemetry.boot
        line = encode(Point(measurement="telemetry", tags=tags, fields=fields, ts_ms=ts))
        entries.append(Entry(line=line, key=reading_key(telemetry, reading)))
    if telemetry.diag:
        if anchor_ms is not None and telemetry.up_ms is not None:
            diag_ts = anchor_ms + telemetry.up_ms
        else:
            diag_ts = newest if newest is not None else received_ms
        point = Point(measurement="device_diag",
                      tags={"site": telemetry.site, "device": telemetry.device},
                      fields=dict(telemetry.diag), ts_ms=diag_ts)
        entries.append(Entry(line=encode(point),
                             key=f"d/{telemetry.device}/{telemetry.boot}/{diag_ts}"))
    return entries
