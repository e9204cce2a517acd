"""InfluxDB line protocol: one :class:`Point` becomes one line, escaped, ms precision.

    telemetry,board=esp32-devkitc,device=esp32-a1,site=home rh_pct=55.2,seq=1042i 1763800000123

Escaping follows the InfluxDB 1.x/2.x reference: commas and spaces in measurements;
commas, equals signs and spaces in tag keys, tag values and field keys; double quotes and
backslashes in string field values. A newline cannot be escaped anywhere, so it is refused,
as are empty names, a trailing backslash and non-finite numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ingest.errors import LineProtocolError

FieldValue = float | int | bool | str

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


@dataclass(frozen=True, kw_only=True)
class Point:
    """One point; ``tags`` with an empty value are left out (InfluxDB refuses them)."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts_ms: int


def _check_name(kind: str, text: str) -> None:
    if not text:
        raise LineProtocolError(f"empty {kind}")
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"newline in {kind} {text!r}")
    if text.endswith("\\"):
        raise LineProtocolError(f"trailing backslash in {kind} {text!r}")


def escape_measurement(name: str) -> str:
    _check_name("measurement", name)
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(kind: str, text: str) -> str:
    """Escape a tag key, tag value or field key (``kind`` only names it in errors)."""
    _check_name(kind, text)
    return text.translate(_KEY_ESCAPES)


def format_field_value(key: str, value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"non-finite value {value!r} for field {key!r}")
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise LineProtocolError(f"newline in string value of field {key!r}")
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    raise LineProtocolError(f"unsupported type {type(value).__name__} for field {key!r}")


def encode(point: Point) -> str:
    """One line (no trailing newline); raises :class:`LineProtocolError` if it cannot be."""
    if not point.fields:
        raise LineProtocolError(f"point of {point.measurement!r} has no fields")
    if isinstance(point.ts_ms, bool) or not isinstance(point.ts_ms, int):
        raise LineProtocolError(f"timestamp must be an int of ms, got {point.ts_ms!r}")
    head = [escape_measurement(point.measurement)]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value:
            head.append(f"{escape_key('tag key', key)}={escape_key('tag value', value)}")
    fields = ",".join(
        f"{escape_key('field key', key)}={format_field_value(key, point.fields[key])}"
        for key in sorted(point.fields)
    )
    return f"{','.join(head)} {fields} {point.ts_ms}"


def encode_all(points: Iterable[Point]) -> list[str]:
    return [encode(point) for point in points]
