"""Decoding and validation of a board's retained status: its state, its application version
(``ver``) and its OTA state (``ota``), DESIGN.md "Topics" and "OTA". A malformed one is refused
with a :class:`~gateway.service.decode.Reject` like any telemetry."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.service.decode import Reason, Reject, _int, _load, _name, _object, _Refused, _require
from gateway.service.readings import _MAX_TS_MS, _U32_MAX
from gateway.service.topics import Topic

STATES = frozenset({"online", "sleeping", "offline"})
VERSION_RE = re.compile(r"[0-9A-Za-z._+-]{1,32}")  # a version as a board reports it: 1.5.0, 0, 1.5.0-rc1
OTA_STATES = frozenset({"recv", "ready", "trial", "done", "refused", "rolled_back"})
_OTA_ID_RE = re.compile(r"[0-9a-f]{8}")
_WHY_RE = re.compile(r"[a-z_]{1,32}")


@dataclass(frozen=True, kw_only=True)
class Status:
    site: str
    device: str
    state: str
    until_ms: int | None
    ver: str | None = None  # the application version the board runs ("0": flashed by cable)
    ota: str | None = None  # its OTA state, compact JSON of the checked keys (DESIGN.md, OTA)


def decode_status(topic: Topic, payload: bytes, *,
                  doc: Mapping[str, object] | None = None) -> Status | Reject:
    """Decode a status message: ``{"state": "online"|"sleeping"|"offline", "until": ms,
    "ver": "1.5.0", "ota": {...}}``."""
    try:
        doc = _load(payload, doc)
        state = _require(doc, "state", "status")
        if state not in STATES:
            raise _Refused(Reason.BAD_TYPE, f"state {state!r} not one of {sorted(STATES)}"[:200])
        until = _int(doc["until"], "until", high=_MAX_TS_MS) if "until" in doc else None
        ver = _name(doc["ver"], "ver", VERSION_RE) if "ver" in doc else None
        ota = _ota(doc["ota"]) if "ota" in doc else None
    except _Refused as refused:
        return refused.reject
    return Status(site=topic.site, device=topic.device, state=str(state), until_ms=until, ver=ver, ota=ota)


def _ota(value: object) -> str:
    """A status's ``ota``, checked key by key and kept as compact JSON (unknown keys dropped)."""
    value = _object(value, "ota")
    st = value.get("st")
    if st not in OTA_STATES:
        raise _Refused(Reason.BAD_TYPE, f"ota.st {st!r} not one of {sorted(OTA_STATES)}"[:200])
    out: dict[str, object] = {"st": st}
    for key, pattern in (("id", _OTA_ID_RE), ("ver", VERSION_RE), ("why", _WHY_RE)):
        if key in value:
            out[key] = _name(value[key], f"ota.{key}", pattern)
    for key in ("at", "of"):
        if key in value:
            out[key] = _int(value[key], f"ota.{key}", high=_U32_MAX)
    return json.dumps(out, separators=(",", ":"))
