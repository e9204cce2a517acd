"""Decoding and validation of v1 telemetry payloads (status: :mod:`gateway.service.status_msg`).

A message decodes into :class:`Telemetry` or is refused with a :class:`Reject` carrying a
:class:`Reason` code (the codes in ``tests/contract/invalid/reasons.json``) and a detail.
Everything written later as a tag or field name is checked here against a strict pattern,
so nothing a device sends can inject line protocol.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.service.identity import BootKey
from gateway.service.readings import (_INT64_MAX, _MAX_TS_MS, _MAX_UP_MS, _U32_MAX, METRIC_RE, RESERVED_FIELDS, Lines,
                                      Reading, compiled_pass, fast_readings)
from gateway.service.topics import NAME_RE, Topic

MAX_MESSAGE_BYTES = 4096
SCHEMA_VERSION = 1
DEFAULT_BOARD = "unknown"
_MAX_DIAG_STRING = 64
_new = object.__new__  # the hot path makes its frozen dataclasses without their per-field set-up
_raw_decode = json.JSONDecoder().raw_decode
_fast_loads: Callable[[bytes], object] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # no wheel for this platform: json reads every message
    _fast_loads = None

DiagValue = float | bool | str


class Reason(StrEnum):
    NOT_JSON = "not_json"
    SCHEMA_VERSION = "schema_version"
    MISSING_KEY = "missing_key"
    BAD_TYPE = "bad_type"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    BAD_NAME = "bad_name"
    OVERSIZE = "oversize"
    TOPIC_MISMATCH = "topic_mismatch"
    BAD_TOPIC = "bad_topic"


@dataclass(frozen=True, kw_only=True)
class Reject:
    reason: Reason
    detail: str


class _Refused(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reject = Reject(reason=reason, detail=detail)


@dataclass(frozen=True, kw_only=True)
class Telemetry:
    site: str
    device: str
    board: str
    boot: int
    up_ms: int | None
    fid: int = 0  # the flash id; 0 from firmware that predates it
    readings: tuple[Reading, ...]
    diag: Mapping[str, DiagValue] = field(default_factory=dict)
    lo: int | None = None  # seqs of this boot below it are settled on the device (tests/contract/ack.md)
    ob: int | None = None  # the oldest boot the device still holds records of, when older than boot

    # Each reading's line-protocol fields part, made while decoding (None: points makes them).
    fields: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    # The readings' lines, newest time and each sensor's newest, when decoding made them: a
    # message read from its bytes in C whose readings all have ts (they need no anchor).
    lines: Lines | None = field(default=None, repr=False, compare=False)
    key: BootKey = field(init=False, repr=False, compare=False)  # asked for often: made once
    needs_anchor: bool = field(init=False, repr=False, compare=False)  # a reading, or d, needs the clock

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", BootKey(self.site, self.device, self.fid, self.boot))
        object.__setattr__(self, "needs_anchor", bool(self.diag) and self.up_ms is not None
                           or any(r.ts_ms is None for r in self.readings))


def _fast_doc(payload: bytes) -> Mapping[str, object] | None:
    """orjson's reading of a message of a size the gateway takes when it is a JSON object (a
    message of ten readings in a third of json's time), else None: json reads it then, and says
    what is wrong (orjson refuses NaN, a BOM, a lone surrogate; json takes them or words it)."""
    if _fast_loads is None or len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        found = _fast_loads(payload)
    except ValueError:
        return None
    return found if type(found) is dict else None


def _load(payload: bytes, doc: Mapping[str, object] | None) -> Mapping[str, object]:
    """The message's JSON object; ``doc`` when a transport already parsed ``payload`` into it."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise _Refused(Reason.OVERSIZE, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    if doc is not None:
        return doc
    try:
        text = payload.decode("utf-8")  # an object alone (the usual): no regexes of loads
        found, end = _raw_decode(text) if text[:1] == "{" else (None, -1)
        if end != len(text):
            found = json.loads(text)  # anything else: loads takes it or says what is wrong
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _Refused(Reason.NOT_JSON, str(err)[:200]) from err
    if not isinstance(found, dict):
        raise _Refused(Reason.BAD_TYPE, f"message is a JSON {type(found).__name__}, not an object")
    return found


def _require(doc: Mapping[str, object], key: str, where: str) -> object:
    if key not in doc:
        raise _Refused(Reason.MISSING_KEY, f"{where}: missing {key!r}")
    return doc[key]


def _int(value: object, what: str, *, low: int = 0, high: int = _INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refused(Reason.BAD_TYPE, f"{what} must be an integer, got {value!r}"[:200])
    if not low <= value <= high:
        raise _Refused(Reason.OUT_OF_RANGE, f"{what} {value} outside [{low}, {high}]")
    return value


def _name(value: object, what: str, pattern: re.Pattern[str] = NAME_RE) -> str:
    if not isinstance(value, str):
        raise _Refused(Reason.BAD_TYPE, f"{what} must be a string, got {value!r}"[:200])
    if not pattern.fullmatch(value):
        raise _Refused(Reason.BAD_NAME, f"{what} {value!r} must match {pattern.pattern}"[:200])
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(Reason.BAD_TYPE, f"{what} must be a number, got {value!r}"[:200])
    try:
        number = float(value)
    except OverflowError as err:
        raise _Refused(Reason.NON_FINITE, f"{what} overflows a float") from err
    if not math.isfinite(number):
        raise _Refused(Reason.NON_FINITE, f"{what} is {value!r}")
    return number


def _object(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _Refused(Reason.BAD_TYPE, f"{what} must be an object, got {type(value).__name__}")
    return value


def _metrics(value: object, where: str) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, number in _object(value, f"{where}.m").items():
        name = _name(key, f"{where} metric", METRIC_RE)
        if name in RESERVED_FIELDS:
            raise _Refused(Reason.BAD_NAME, f"{where} metric {name!r} is reserved")
        metrics[name] = _number(number, f"{where}.m.{name}")
    return metrics


def _reading(value: object, index: int, envelope_up: int | None) -> Reading:
    where = f"r[{index}]"
    doc = _object(value, where)
    seq = _int(_require(doc, "seq", where), f"{where}.seq", high=_U32_MAX)
    ts_ms = up_ms = None
    if "ts" in doc:
        ts_ms = _int(doc["ts"], f"{where}.ts", high=_MAX_TS_MS)
    elif "up" in doc:
        up_ms = _int(doc["up"], f"{where}.up", high=_MAX_UP_MS)
        if envelope_up is None:
            raise _Refused(Reason.MISSING_KEY, f"{where} has only 'up' but the envelope has no 'up'")
    else:
        raise _Refused(Reason.MISSING_KEY, f"{where}: missing 'ts' or 'up'")
    metrics = _metrics(_require(doc, "m", where), where)
    sensor = _name(doc["s"], f"{where}.s") if "s" in doc else None
    return Reading(seq=seq, ts_ms=ts_ms, up_ms=up_ms, metrics=metrics, sensor=sensor)


def _diag(value: object) -> dict[str, DiagValue]:
    diag: dict[str, DiagValue] = {}
    for key, item in _object(value, "d").items():
        name = _name(key, "d key", METRIC_RE)
        if isinstance(item, bool):
            diag[name] = item
        elif isinstance(item, str):
            if len(item) > _MAX_DIAG_STRING or not item.isprintable():
                raise _Refused(Reason.BAD_TYPE, f"d.{name} must be a short printable string")
            diag[name] = item
        else:
            diag[name] = _number(item, f"d.{name}")
    return diag


def _telemetry(topic: Topic, payload: bytes, parsed: Mapping[str, object] | None) -> Telemetry:
    doc = _load(payload, parsed)
    version = _require(doc, "v", "envelope")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise _Refused(Reason.SCHEMA_VERSION, f"schema version {version!r}, expected {SCHEMA_VERSION}"[:200])
    device = _name(_require(doc, "dev", "envelope"), "dev")
    if device != topic.device:
        raise _Refused(Reason.TOPIC_MISMATCH, f"dev {device!r} published on {str(topic)!r}")
    boot = _int(_require(doc, "boot", "envelope"), "boot", high=_U32_MAX)
    fid = _int(doc["fid"], "fid", high=_U32_MAX) if "fid" in doc else 0
    up_ms = _int(doc["up"], "up", high=_MAX_UP_MS) if "up" in doc else None
    lo = _int(doc["lo"], "lo", high=_U32_MAX) if "lo" in doc else None
    ob = _int(doc["ob"], "ob", high=_U32_MAX) if "ob" in doc else None
    ob = ob if ob is not None and ob < boot else None  # only an older boot changes which boot is acked
    board = _name(doc.get("board", DEFAULT_BOARD), "board")
    raw_readings = _require(doc, "r", "envelope")
    if not isinstance(raw_readings, list):
        raise _Refused(Reason.BAD_TYPE, f"r must be a list, got {type(raw_readings).__name__}")
    one_pass = fast_readings(raw_readings, up_ms, boot)
    if one_pass is not None:
        readings, fields, uptime_only = one_pass
    else:  # something unusual: the careful path names it
        readings, fields = tuple(_reading(item, i, up_ms) for i, item in enumerate(raw_readings)), None
        uptime_only = any(r.ts_ms is None for r in readings)
    diag = _diag(doc["d"]) if "d" in doc else {}
    telemetry = _new(Telemetry)  # as the dataclass makes it (__post_init__ too), without its set-up
    telemetry.__dict__.update(site=topic.site, device=device, board=board, boot=boot, fid=fid, up_ms=up_ms,
                              readings=readings, fields=fields, diag=diag, lo=lo, ob=ob,
                              key=BootKey(topic.site, device, fid, boot),
                              needs_anchor=bool(diag) and up_ms is not None or uptime_only)
    return telemetry


if compiled_pass is not None:
    compiled_pass.setup_telemetry(Telemetry, BootKey, DEFAULT_BOARD)
_c_telemetry: Callable[[object, str, str], Telemetry | None] | None = (
    compiled_pass.telemetry if compiled_pass is not None else None)
_c_message: Callable[[bytes, str, str], Telemetry | None] | None = (
    compiled_pass.message if compiled_pass is not None else None)


def decode_telemetry(topic: Topic, payload: bytes, *,
                     doc: Mapping[str, object] | None = None) -> Telemetry | Reject:
    """Decode one telemetry message on ``topic``; ``doc``: its JSON object, when a transport parsed it already."""
    small = len(payload) <= MAX_MESSAGE_BYTES  # the C passes take no more (the rest: the reasons below)
    if small and _c_message is not None and doc is None and type(payload) is bytes:  # the common message: its bytes
        found = _c_message(payload, topic.site, topic.device)
        if found is not None:
            return found
    fast = _fast_doc(payload) if doc is None else None
    if small and _c_telemetry is not None:  # the common message, in C
        found = _c_telemetry(fast if doc is None else doc, topic.site, topic.device)
        if found is not None:
            return found
    if fast is not None:
        try:
            return _telemetry(topic, payload, fast)
        except _Refused:
            pass  # as orjson read it (an integer past 64 bits is a float): json's reading gives the reason
    try:
        return _telemetry(topic, payload, doc)
    except _Refused as refused:
        return refused.reject
