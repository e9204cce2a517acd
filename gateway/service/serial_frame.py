"""SEN1 serial frames (tests/contract/serial/README.md): pure parsing and encoding, no I/O.

    SEN1 <payload json> <crc32 as 8 hex digits>\\n

:func:`parse_line` sorts one line into exactly one :class:`Outcome`: a good frame
(``telemetry`` / ``status`` / ``ack`` / ``cmd``), ``noise`` (anything not starting with
``SEN1 ``, and half lines whose JSON never closes — a board reset mid-line), ``bad_frame``
(starts with ``SEN1 `` but is not prefix, JSON object and 8 hex digits, or is too long) or
``bad_crc``. It never raises.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.service.topics import Topic, is_name

PREFIX = b"SEN1 "
MAX_LINE = 4096 + 64
_CRC = re.compile(rb"[0-9a-fA-F]{8}")


class Outcome(StrEnum):
    TELEMETRY = "telemetry"
    STATUS = "status"
    ACK = "ack"
    CMD = "cmd"
    OTA = "ota"  # a chunk for a board (gateway/service/serial_bridge.py), echoed back
    NOISE = "noise"
    BAD_FRAME = "bad_frame"
    BAD_CRC = "bad_crc"

    def __str__(self) -> str:
        return self.value

    @property
    def is_frame(self) -> bool:
        return self in _FRAMES


_FRAMES = frozenset({Outcome.TELEMETRY, Outcome.STATUS, Outcome.ACK, Outcome.CMD, Outcome.OTA})
_KINDS = {"status": Outcome.STATUS, "ack": Outcome.ACK, "cmd": Outcome.CMD, "ota": Outcome.OTA}


@dataclass(frozen=True)
class Parsed:
    """One line read. ``payload`` is the JSON bytes exactly as framed; ``message`` the object."""

    outcome: Outcome
    payload: bytes = b""
    message: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def topic(self) -> Topic | None:
        """The MQTT topic the frame stands for (device → gateway kinds) when its ``site`` and
        ``dev`` are valid names, else None."""
        if self.outcome not in (Outcome.TELEMETRY, Outcome.STATUS):
            return None
        site, dev = self.message.get("site"), self.message.get("dev")
        if not isinstance(site, str) or not isinstance(dev, str) or not (is_name(site) and is_name(dev)):
            return None
        return Topic(site=site, device=dev, kind=self.outcome.value)


def crc_hex(payload: bytes) -> str:
    return f"{zlib.crc32(payload) & 0xFFFFFFFF:08x}"


def encode(message: dict[str, Any]) -> bytes:
    """A complete frame line (with ``\\n``) for a JSON object, compact as the firmware writes it."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return PREFIX + payload + b" " + crc_hex(payload).encode() + b"\n"


def ack_frame(ack: dict[str, Any]) -> bytes:
    """The gateway → device ack frame: the MQTT ack payload plus ``"kind": "ack"``."""
    return encode({"kind": "ack", **ack})


def parse_line(raw: bytes) -> Parsed:
    """Sort one line (with or without its line ending) into an outcome; never raises."""
    line = raw.rstrip(b"\r\n")
    if not line.startswith(PREFIX):
        return Parsed(Outcome.NOISE)
    if len(line) > MAX_LINE:
        return Parsed(Outcome.BAD_FRAME, detail=f"line of {len(line)} bytes (max {MAX_LINE})")
    body = line[len(PREFIX):]
    if b"}" not in body:
        return Parsed(Outcome.NOISE, detail="half line: the JSON never closes")
    payload, sep, crc = body.rpartition(b" ")
    if not sep or not payload.startswith(b"{") or not payload.endswith(b"}") or not _CRC.fullmatch(crc):
        return Parsed(Outcome.BAD_FRAME, detail="not 'SEN1 <json> <8 hex digits>'")
    if crc_hex(payload) != crc.decode().lower():
        return Parsed(Outcome.BAD_CRC, payload=payload, detail=f"crc {crc.decode()} != {crc_hex(payload)}")
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return Parsed(Outcome.BAD_FRAME, payload=payload, detail="good CRC but not JSON")
    if not isinstance(message, dict):
        return Parsed(Outcome.BAD_FRAME, payload=payload, detail="good CRC but not a JSON object")
    kind = message.get("kind")
    if kind is None:
        outcome = Outcome.TELEMETRY
    elif isinstance(kind, str) and kind in _KINDS:
        outcome = _KINDS[kind]
    else:
        return Parsed(Outcome.BAD_FRAME, payload=payload, detail=f"unknown kind {kind!r}")
    return Parsed(outcome, payload=payload, message=message)
