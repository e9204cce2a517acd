"""One reading: its type, the limits on what a board may send in it, and the one pass that
decodes the readings of a common message with their line-protocol fields.

A message of ten readings makes ten :class:`Reading` objects, and the gateway's time for such a
message is mostly per reading: so a reading is a tuple (the cheapest object to make), and
:func:`fast_readings` checks each reading and makes its fields part (``boot=..i,m=..,seq=..i``)
with a function made once per set of metric names (:func:`compiled`, one f-string: the
format of :func:`template` without reading a format string each time), instead of one walk over
the metrics to check them and another to write them. Anything unusual makes it give up (None):
:mod:`gateway.service.decode`'s careful path then decodes the message and names what is wrong.
The caches are bounded: a flood of new names costs time, not memory.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import NamedTuple

from ingest.lineproto import escape_key

from gateway.service.topics import NAME_RE

METRIC_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# The schema's field and tag names may not be metrics: one named like a tag shadows it in InfluxQL.
RESERVED_FIELDS = frozenset({"seq", "boot", "time", "site", "device", "board", "sensor"})
_INT64_MAX = 2**63 - 1
# What a board can send (boot, seq and fid are 32 bits): no later sum (anchor + up) leaves 64 bits.
_U32_MAX = 2**32 - 1
_MAX_UP_MS = 2**42  # about 139 years of uptime
_MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
_CACHE_MAX = 4096
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_new_tuple = tuple.__new__


class Reading(NamedTuple):  # a tuple: a message of ten makes ten, and a tuple is the cheapest to make
    """One reading; exactly one of ``ts_ms`` (device clock) and ``up_ms`` (uptime) is used."""

    seq: int
    ts_ms: int | None
    up_ms: int | None
    metrics: Mapping[str, float]
    sensor: str | None = None  # the reading's ``s``; None from firmware that predates it


Lines = tuple[list[str], int | None, dict[str, int]]  # a message's lines, newest time, each sensor's


_FIELD_KEYS: dict[str, str] = {}  # metric name -> "escaped_name="
_TEMPLATES: dict[tuple[str, ...], str] = {}  # metric names -> the fields part, as a format string


def field_key(name: str) -> str:
    """``name`` escaped as a field key, with its ``=``."""
    found = _FIELD_KEYS.get(name)
    if found is None:
        found = escape_key("field key", name) + "="
        if len(_FIELD_KEYS) < _CACHE_MAX:
            _FIELD_KEYS[name] = found
    return found


def template(names: tuple[str, ...]) -> str:
    """The fields part of a reading whose metrics are ``names``, in that order, as a format
    string: ``{0}`` its seq, ``{1}`` the boot, ``{2}``... the metrics' float values; sorted and
    escaped as :func:`ingest.lineproto.encode` writes them (no name may be seq or boot)."""
    found = _TEMPLATES.get(names)
    if found is None:
        parts = [("boot", "boot={1}i"), ("seq", "seq={0}i")] + [
            (name, field_key(name).replace("{", "{{").replace("}", "}}") + f"{{{i + 2}!r}}")
            for i, name in enumerate(names)]
        found = ",".join(text for _, text in sorted(parts))
        if len(_TEMPLATES) >= _CACHE_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[names] = found
    return found


Fields = Callable[..., str]  # (seq, boot, *values) -> a reading's fields part
_CHECKED: dict[tuple[str, ...], Fields] = {}  # metric names that passed METRIC_RE, none reserved -> fields


_ONCE: set[tuple[str, ...]] = set()  # checked names seen once: compiled when they come again


def _checked_template(names: tuple[str, ...]) -> Fields | None:
    """The fields part of ``names``, or None when one of them is no metric name the schema
    takes. Names seen before get :func:`compiled` (~50 µs, then kept); the first time, the
    format of :func:`template` (so a flood of new names costs what it did, not a compile each)."""
    for name in names:
        if type(name) is not str or name in RESERVED_FIELDS or not METRIC_RE.fullmatch(name):
            return None
    if names not in _ONCE:
        if len(_ONCE) >= _CACHE_MAX:
            _ONCE.clear()
        _ONCE.add(names)
        return template(names).format
    _ONCE.discard(names)
    found = _CHECKED[names] = compiled(names)
    if len(_CHECKED) > _CACHE_MAX:
        _CHECKED.clear()
    return found


def compiled(names: tuple[str, ...]) -> Fields:
    """:func:`template` as a function of (seq, boot, *values) made of one f-string: a reading's
    fields in ~0.9 µs where ``str.format`` takes ~1.2 (it reads its format string at every call).
    Only for names :data:`METRIC_RE` takes (lowercase letters, digits, ``_``): nothing in them
    needs escaping, in line protocol or in the function's source (checked again here)."""
    if not all(_SAFE_NAME.fullmatch(name) for name in names):
        raise ValueError(f"not metric names: {names!r}")
    parts = [("boot", "boot={boot}i"), ("seq", "seq={seq}i")] + [
        (name, f"{name}={{v{i}!r}}") for i, name in enumerate(names)]
    params = ", ".join(["seq", "boot"] + [f"v{i}" for i in range(len(names))])
    source = f'lambda {params}: f"{",".join(text for _, text in sorted(parts))}"'
    made: Fields = eval(source, {"__builtins__": {}})  # made of checked names only
    return made


def _floats(values: tuple[object, ...]) -> tuple[float, ...] | None:
    """Integer values as floats, as decode's careful path makes them; None at anything else."""
    out = []
    for value in values:
        if type(value) is int and -_INT64_MAX <= value <= _INT64_MAX:
            value = float(value)
        elif type(value) is not float or not math.isfinite(value):
            return None
        out.append(value)
    return tuple(out)


class Decoded(NamedTuple):
    readings: tuple[Reading, ...]
    fields: tuple[str, ...]  # each reading's line-protocol fields part
    uptime_only: bool  # some reading has only ``up``: the boot's clock anchor places it


def python_readings(raw: list[object], envelope_up: int | None, boot: int) -> Decoded | None:
    """A message's readings (``r``) with every check of decode's careful path, in one pass that
    also makes each reading's fields; None at anything unusual (the careful path names it)."""
    readings: list[Reading] = []
    fields: list[str] = []
    uptime_only = False
    for item in raw:
        if type(item) is not dict:
            return None
        get = item.get
        seq, metrics, sensor = get("seq"), get("m"), get("s")
        if type(seq) is not int or not 0 <= seq <= _U32_MAX or type(metrics) is not dict:
            return None
        if (sensor is not None or "s" in item) and (type(sensor) is not str or not NAME_RE.fullmatch(sensor)):
            return None
        ts = up = None
        if "ts" in item:
            ts = item["ts"]
            if type(ts) is not int or not 0 <= ts <= _MAX_TS_MS:
                return None
        else:
            up = get("up")
            if type(up) is not int or not 0 <= up <= _MAX_UP_MS or envelope_up is None:
                return None
            uptime_only = True
        names = tuple(metrics)
        form = _CHECKED.get(names) or _checked_template(names)
        if form is None:
            return None
        values = tuple(metrics.values())
        for value in values:
            if type(value) is not float or value - value != 0.0:  # not a float, or inf or nan
                values = _floats(values)  # type: ignore[assignment]
                if values is None:
                    return None
                metrics = dict(zip(names, values, strict=True))
                break
        readings.append(_new_tuple(Reading, (seq, ts, up, metrics, sensor)))
        fields.append(form(seq, boot, *values))
    return Decoded(tuple(readings), tuple(fields), uptime_only)


compiled_pass: ModuleType | None = None  # gateway/service/fastpath.c, where it was built
if not os.environ.get("SEN_PURE_PYTHON"):
    try:
        from gateway.service import _fastpath as compiled_pass
    except ImportError:  # installed where no C compiler was: the Python versions do it all
        compiled_pass = None
if compiled_pass is not None:
    compiled_pass.setup(Reading, Decoded)
    _c_readings = compiled_pass.readings

    def fast_readings(raw: list[object], envelope_up: int | None, boot: int) -> Decoded | None:
        """:func:`python_readings`, in C for the common message (the same result: tests pin them)."""
        return _c_readings(raw, envelope_up, boot) or python_readings(raw, envelope_up, boot)
else:
    fast_readings = python_readings
