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


# -- taking a line apart (to set one refused field aside) ----------------------------------------
def _unescape_key(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",= ":
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def split_fields(line: str) -> tuple[str, list[tuple[str, str]], str]:
    """``(series, [(field key, "key=value" as written)...], timestamp)`` of a line, where
    ``series`` is the measurement and tags as written and the key unescaped. Escaped commas,
    spaces and equals signs and quoted string values (with their escapes) are respected.
    Raises :class:`LineProtocolError` for a line it cannot take apart."""
    n, i = len(line), 0
    while i < n and line[i] != " ":  # the series: up to the first unescaped space
        i += 2 if line[i] == "\\" else 1
    series, i = line[:i], i + 1
    fields: list[tuple[str, str]] = []
    while i < n:
        start = i
        while i < n and line[i] not in "= ,":
            i += 2 if line[i] == "\\" else 1
        if i >= n or line[i] != "=" or i == start:
            raise LineProtocolError(f"no field key=value at column {start} of {line[:200]!r}")
        key, i = _unescape_key(line[start:i]), i + 1
        if i < n and line[i] == '"':  # a string value: up to the unescaped closing quote
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            if i >= n:
                raise LineProtocolError(f"unterminated string in {line[:200]!r}")
            i += 1
        else:
            while i < n and line[i] not in ", ":
                i += 1
        fields.append((key, line[start:i]))
        if i >= n or line[i] == " ":
            break
        i += 1  # the comma before the next field
    if not series or not fields:
        raise LineProtocolError(f"not a line of line protocol: {line[:200]!r}")
    return series, fields, line[i + 1:] if i < n else ""


def split_field(line: str, key: str) -> tuple[str, str] | None:
    """``(the line without field key, a line of that field alone)``, both with the line's
    measurement, tags and timestamp; None when the line has no such field or nothing else."""
    series, fields, ts = split_fields(line)
    kept = [text for name, text in fields if name != key]
    alone = [text for name, text in fields if name == key]
    if not alone or not kept:
        return None
    tail = f" {ts}" if ts else ""
    return f"{series} {','.join(kept)}{tail}", f"{series} {alone[0]}{tail}"
