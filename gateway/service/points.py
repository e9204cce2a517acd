"""Decoded telemetry → line-protocol spool entries, on the InfluxDB schema of DESIGN.md.

- ``telemetry``: tags site, device, board, sensor (when the reading has one); a float field
  per metric, integer fields seq and
  boot; time = the reading's ``ts``, or ``anchor + up`` for uptime-only readings.
- ``device_diag``: tags site, device; fields from ``d`` (numbers as floats, so a field keeps
  one type whatever a firmware sends); time = ``anchor + envelope up`` when anchored, else
  the newest reading's time, else the receive time.

Each reading's spool key is (site, device, fid, boot, seq), so a redelivered reading is spooled once:
:func:`to_spool` gives a message's readings as one :class:`~ingest.ranges.Run` (one spool
row, deduplicated by seq ranges); :func:`to_entries` the same lines one keyed entry each.
The lines are built as :func:`ingest.lineproto.encode` builds them (tests pin the two
together), with the tag part and field names escaped once, not once per reading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ingest.lineproto import Point, encode, escape_key, escape_measurement, format_field_value
from ingest.ranges import Run
from ingest.spool import Entry

from gateway.errors import AnchorMissing
from gateway.service.decode import Telemetry
from gateway.service.identity import BootKey
from gateway.service.readings import Lines, Reading, compiled_pass, field_key, template

_c_lines: Callable[..., Lines | None] | None = compiled_pass.lines if compiled_pass is not None else None


def reading_time(reading: Reading, anchor_ms: int | None) -> int:
    if reading.ts_ms is not None:
        return reading.ts_ms
    if anchor_ms is None or reading.up_ms is None:
        raise AnchorMissing(f"reading seq {reading.seq} has only 'up' and no anchor")
    return anchor_ms + reading.up_ms


def reading_key(telemetry: Telemetry, reading: Reading) -> str:
    return f"{telemetry.key.stream}/{reading.seq}"


_HEADS: dict[tuple[str, str, str, str | None], str] = {}  # tags -> "telemetry,board=..."
_HEADS_MAX = 65536


def _head(site: str, device: str, board: str, sensor: str | None) -> str:
    found = _HEADS.get((site, device, board, sensor))
    if found is None:
        tags = {"site": site, "device": device, "board": board, "sensor": sensor or ""}
        found = ",".join([escape_measurement("telemetry")] + [
            f"{escape_key('tag key', k)}={escape_key('tag value', tags[k])}"
            for k in sorted(tags) if tags[k]])
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[(site, device, board, sensor)] = found
    return found


def _fields(reading: Reading, boot: int) -> str:
    """A reading's fields as :func:`ingest.lineproto.encode` writes them: by their template
    when every value is a finite float (what decoding makes), else value by value."""
    metrics = reading.metrics
    values = tuple(metrics.values())
    for value in values:
        if type(value) is not float or value - value != 0.0:  # not a float, or inf or nan
            break
    else:
        names = tuple(metrics)
        if "boot" not in metrics and "seq" not in metrics:
            return template(names).format(reading.seq, boot, *values)
    fields = [("boot", f"boot={boot}i"), ("seq", f"seq={reading.seq}i")]
    fields.extend((key, field_key(key) + format_field_value(key, value)) for key, value in metrics.items())
    fields.sort()
    return ",".join(text for _, text in fields)


def _reading_lines(telemetry: Telemetry, anchor_ms: int | None) -> Lines:
    """The ``telemetry`` lines of every reading (as :func:`ingest.lineproto.encode` writes
    them, without building a Point per reading), the newest reading time, and each sensor's."""
    if telemetry.lines is not None:  # made while decoding
        return telemetry.lines
    site, device, board, boot = telemetry.site, telemetry.device, telemetry.board, telemetry.boot
    readings = telemetry.readings
    fields = telemetry.fields or [_fields(reading, boot) for reading in readings]
    if _c_lines is not None:
        found = _c_lines(readings, fields, _head, site, device, board, anchor_ms)
        if found is not None:
            return found
    return python_lines(readings, fields, site, device, board, anchor_ms)


def python_lines(readings: tuple[Reading, ...], fields: Sequence[str], site: str, device: str, board: str,
                 anchor_ms: int | None) -> Lines:
    """:func:`_reading_lines`' loop (in C where ``fastpath.c`` was built: the same result)."""
    lines: list[str] = []
    newest: int | None = None
    sensors: dict[str, int] = {}
    head = sensor = None
    for reading, part in zip(readings, fields, strict=True):
        ts = reading.ts_ms if reading.ts_ms is not None else reading_time(reading, anchor_ms)
        if newest is None or ts > newest:
            newest = ts
        if head is None or reading.sensor != sensor:
            head, sensor = _head(site, device, board, reading.sensor), reading.sensor
        if sensor is not None and ts > sensors.get(sensor, -1):
            sensors[sensor] = ts
        lines.append(f"{head} {part} {ts}")
    return lines, newest, sensors


class Spooled(NamedTuple):
    """What :func:`spool_entries` makes of a message: its spool entries, and the times the
    registry is told (the newest reading's, each sensor's newest; None and {} without readings)."""

    entries: list[Entry | Run]
    newest: int | None
    sensors: dict[str, int]
    seqs: list[int]  # the readings' seqs, in the message's order


_STREAMS: dict[BootKey, str] = {}  # a boot's stream, made once (the key of every message)
_STREAMS_MAX = 65536
_new_tuple = tuple.__new__


def _stream(key: BootKey) -> str:
    found = _STREAMS.get(key)
    if found is None:
        if len(_STREAMS) >= _STREAMS_MAX:
            _STREAMS.clear()
        found = _STREAMS[key] = key.stream
    return found


def spool_entries(telemetry: Telemetry, *, anchor_ms: int | None, received_ms: int) -> Spooled:
    """The readings as one :class:`Run` keyed by (boot key, seq), plus the diag line."""
    lines, newest, sensors = _reading_lines(telemetry, anchor_ms)
    seqs = [r.seq for r in telemetry.readings]
    out: list[Entry | Run] = []
    if lines:
        out.append(_new_tuple(Run, (_stream(telemetry.key), tuple(seqs), tuple(lines))))
    if telemetry.diag:
        out.append(_diag_entry(telemetry, anchor_ms, newest, received_ms))
    return _new_tuple(Spooled, (out, newest, sensors, seqs))


def to_spool(telemetry: Telemetry, *, anchor_ms: int | None, received_ms: int) -> list[Entry | Run]:
    """:func:`spool_entries`' entries."""
    return spool_entries(telemetry, anchor_ms=anchor_ms, received_ms=received_ms).entries


def to_entries(telemetry: Telemetry, *, anchor_ms: int | None, received_ms: int) -> list[Entry]:
    """The same lines as :func:`to_spool`, one keyed :class:`Entry` each."""
    entries: list[Entry] = []
    for item in to_spool(telemetry, anchor_ms=anchor_ms, received_ms=received_ms):
        if isinstance(item, Run):
            entries.extend(Entry(line=line, key=f"{item.stream}/{seq}")
                           for seq, line in zip(item.seqs, item.lines, strict=True))
        else:
            entries.append(item)
    return entries


def _diag_entry(telemetry: Telemetry, anchor_ms: int | None, newest: int | None,
                received_ms: int) -> Entry:
    if anchor_ms is not None and telemetry.up_ms is not None:
        diag_ts = anchor_ms + telemetry.up_ms
    else:
        diag_ts = newest if newest is not None else received_ms
    point = Point(measurement="device_diag",
                  tags={"site": telemetry.site, "device": telemetry.device},
                  fields=dict(telemetry.diag), ts_ms=diag_ts)
    key = telemetry.key
    return Entry(line=encode(point), key=f"d/{key.site}/{key.device}/{key.fid}/{key.boot}/{diag_ts}")
