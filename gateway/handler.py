"""One incoming message, whatever the transport: decode, stamp, spool — or set aside.

:meth:`Handler.handle` returns only once the message is durably dealt with: its readings
committed to the spool, or the message kept as a dead letter, or (status) noted. Only then
may the transport acknowledge it. If it raises, the message must not be acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ingest.errors import LineProtocolError
from ingest.spool import Spool

from gateway.decode import Reason, Reject, Status, Telemetry, decode_status, decode_telemetry
from gateway.points import to_entries
from gateway.registry import Registry
from gateway.rejects import RejectLog
from gateway.topics import Topic, TopicError, parse_topic

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class HandlerStats:
    received: int
    readings: int
    duplicates: int
    rejected: int


def _nothing() -> None:
    return None


class Handler:
    def __init__(self, *, spool: Spool, registry: Registry, rejects: RejectLog,
                 on_commit: Callable[[], None] = _nothing) -> None:
        self._spool = spool
        self._registry = registry
        self._rejects = rejects
        self._on_commit = on_commit
        self._states: dict[tuple[str, str], str] = {}
        self._received = self._readings = self._duplicates = 0

    @property
    def stats(self) -> HandlerStats:
        return HandlerStats(received=self._received, readings=self._readings,
                            duplicates=self._duplicates, rejected=self._rejects.total)

    def handle(self, topic: str, payload: bytes, *, received_ms: int, source: str = "mqtt") -> None:
        self._received += 1
        try:
            parsed = parse_topic(topic)
        except TopicError as err:
            reason = Reason.BAD_NAME if err.bad_name else Reason.BAD_TOPIC
            self._reject(topic, topic, Reject(reason=reason, detail=str(err)), payload, source)
            return
        if parsed.kind == "telemetry":
            self._telemetry(parsed, payload, received_ms, source)
        elif parsed.kind == "status":
            self._status(parsed, payload, source)
        else:
            _LOGGER.debug("ignoring message on %s", topic)

    def _reject(self, topic: str, device: str, reject: Reject, payload: bytes, source: str) -> None:
        self._rejects.record(source=f"{source}:{topic}", device=device, reject=reject, raw=payload)

    def _telemetry(self, topic: Topic, payload: bytes, received_ms: int, source: str) -> None:
        decoded = decode_telemetry(topic, payload)
        if isinstance(decoded, Reject):
            self._reject(str(topic), topic.device, decoded, payload, source)
            return
        try:
            entries = to_entries(decoded, anchor_ms=self._anchor(decoded, received_ms),
                                 received_ms=received_ms)
        except LineProtocolError as err:  # decode should make this impossible
            reject = Reject(reason=Reason.BAD_NAME, detail=f"cannot encode: {err}")
            self._reject(str(topic), topic.device, reject, payload, source)
            return
        result = self._spool.commit(entries)
        self._readings += result.added
        self._duplicates += result.duplicates
        if result.added:
            self._on_commit()
        _LOGGER.debug("%s boot %s: spooled %s lines, %s duplicates", topic.device,
                      decoded.boot, result.added, result.duplicates)

    def _anchor(self, telemetry: Telemetry, received_ms: int) -> int | None:
        if not telemetry.needs_anchor and not telemetry.diag:
            return None
        if telemetry.up_ms is None:
            return None
        return self._registry.anchor(telemetry.device, telemetry.boot,
                                     candidate_ms=received_ms - telemetry.up_ms)

    def _status(self, topic: Topic, payload: bytes, source: str) -> None:
        if not payload:  # a cleared retained status
            return
        decoded = decode_status(topic, payload)
        if isinstance(decoded, Reject):
            self._reject(str(topic), topic.device, decoded, payload, source)
            return
        self._note_state(decoded)

    def _note_state(self, status: Status) -> None:
        key = (status.site, status.device)
        if self._states.get(key) != status.state:
            self._states[key] = status.state
            _LOGGER.info("device %s/%s is %s", status.site, status.device, status.state)
