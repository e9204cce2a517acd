"""Incoming messages, whatever the transport: decode, stamp, spool — or set aside.

:meth:`Handler.handle_many` deals with a batch of messages in ONE spool transaction (group
commit) and returns, per message, the end-to-end :class:`~gateway.service.acks.Ack` to send back
(telemetry whose readings are now committed, duplicates included) or None (status, retained
acks, rejects — each durably dealt with too). Only after it returned may the transport
acknowledge the messages; if it raises, none of them may be acknowledged.
Both inputs reach it through the :class:`~gateway.service.intake.Intake` (group commit);
:meth:`Handler.handle` is the same for one message, for tests and tools.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ingest.errors import LineProtocolError
from ingest.spool import Spool

from gateway.service.acks import Ack, decode_ack
from gateway.service.decode import Reason, Reject, Telemetry, decode_telemetry
from gateway.service.status_msg import decode_status
from gateway.service.identity import BootKey
from gateway.service.points import Spooled, spool_entries
from gateway.errors import TopicError
from gateway.service.registry import Note, Registry
from gateway.service.rejects import RejectLog
from gateway.service.topics import Topic, parse_topic

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)  # one per message: slots, not frozen (cheaper to make)
class Message:
    """One message from a transport. A transport that has parsed it already (a serial frame:
    its site and device, its JSON) hands over ``parsed`` and ``doc``, so neither is parsed
    again; ``topic`` stays the text that dead letters and logs show."""

    topic: str
    payload: bytes
    received_ms: int
    source: str = "mqtt"
    parsed: Topic | None = None
    doc: Mapping[str, object] | None = None
    # False: the message may have waited in the broker's queue for this gateway (it came
    # before the end of a resumed session's backlog), so its receive time says little about
    # when it was sent: it makes no clock anchor while a live one may still come (HOLD).
    live: bool = True
    anchor_anyway: bool = False  # held long enough: anchor from it after all
    held_at: float = 0.0  # monotonic time it was first held (0: never)


class _Hold:
    """handle_many's answer for a message to hand in again later (see Message.live)."""

    def __repr__(self) -> str:
        return "HOLD"


HOLD = _Hold()


@dataclass(frozen=True, kw_only=True)
class HandlerStats:
    received: int
    readings: int
    duplicates: int
    rejected: int


def _nothing() -> None:
    return None


class _Pending(NamedTuple):  # one per message: a tuple is the cheapest to make
    at: int  # the message's place in the batch
    telemetry: Telemetry
    spooled: Spooled
    received_ms: int


class Handler:
    def __init__(self, *, spool: Spool, registry: Registry, rejects: RejectLog,
                 on_commit: Callable[[], None] = _nothing) -> None:
        self._spool = spool
        self._registry = registry
        self._rejects = rejects
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._received = self._readings = self._duplicates = 0

    @property
    def stats(self) -> HandlerStats:
        with self._lock:
            return HandlerStats(received=self._received, readings=self._readings,
                                duplicates=self._duplicates, rejected=self._rejects.total)

    def handle(self, topic: str, payload: bytes, *, received_ms: int,
               source: str = "mqtt") -> Ack | None:
        """One message; blocks until its readings are committed. The ack to send, or None."""
        message = Message(topic=topic, payload=payload, received_ms=received_ms, source=source)
        ack = self.handle_many([message])[0]
        return ack if isinstance(ack, Ack) else None

    def handle_many(self, messages: Sequence[Message]) -> list[Ack | _Hold | None]:
        """Many messages, one spool transaction; per message the ack to send, None, or
        :data:`HOLD`: a queued message of a boot with no anchor yet, not committed, to be handed
        in again (once a live message anchored the boot, or with ``anchor_anyway``)."""
        acks: list[Ack | _Hold | None] = [None] * len(messages)
        pending: list[_Pending] = []
        decoded = [(i, m, t) for i, m in enumerate(messages) if (t := self._decode(m)) is not None]
        if not all(m.live or m.anchor_anyway for _, m, _ in decoded):
            decoded = self._hold(decoded, acks)
        # New boots' anchors, stored together in one registry commit: only a message with
        # readings without ts (or diagnostics to place) needs one, and a boot's comes from its
        # earliest live message in the batch, else from its earliest.
        candidates: dict[BootKey, tuple[bool, int]] = {}
        for _, m, t in reversed(decoded):
            if t.needs_anchor and t.up_ms is not None:
                found = candidates.get(t.key)
                if found is None or m.live >= found[0]:
                    candidates[t.key] = (m.live, m.received_ms - t.up_ms)
        anchors = self._registry.anchors({key: value for key, (_, value) in candidates.items()})
        for index, message, telemetry in decoded:
            spooled = self._entries(message, telemetry, anchors)
            if spooled is not None:
                pending.append(_Pending(at=index, telemetry=telemetry, spooled=spooled,
                                        received_ms=message.received_ms))
        with self._lock:  # a message handed in again after a HOLD was counted the first time
            self._received += sum(1 for m in messages if not m.held_at)
        if not pending:
            return acks
        results = self._spool.commit_many([p.spooled.entries for p in pending])
        added_total = duplicates_total = 0
        notes: list[Note] = []
        boots: list[BootKey] = []
        for item, result in zip(pending, results, strict=True):
            t, spooled = item.telemetry, item.spooled  # the readings' times as their lines have them
            added = result.added
            notes.append((t.key, spooled.seqs, added, result.duplicates, spooled.newest if added else None,
                          item.received_ms, t.lo, spooled.sensors if added else None))
            # While the device still holds an older boot's records, ack that boot: an ack
            # for this one would free them unseen (tests/contract/ack.md, "Older boots").
            boots.append(t.key if t.ob is None else t.key._replace(boot=t.ob))
            added_total += added
            duplicates_total += result.duplicates
        self._registry.note_many(notes)
        for item, ack in zip(pending, self._registry.acks_for(boots), strict=True):
            acks[item.at] = ack  # after the whole batch is noted: an ack may cover later messages' seqs
        with self._lock:
            self._readings += added_total
            self._duplicates += duplicates_total
        if added_total:
            self._on_commit()
        return acks

    def _hold(self, decoded: list[tuple[int, Message, Telemetry]],
              acks: list[Ack | _Hold | None]) -> list[tuple[int, Message, Telemetry]]:
        """Set HOLD for queued messages whose boot has no anchor and no live message in hand."""
        live = {t.key for _, m, t in decoded if m.live or m.anchor_anyway}
        kept = []
        for index, message, telemetry in decoded:
            if (message.live or message.anchor_anyway or not telemetry.needs_anchor or telemetry.up_ms is None
                    or telemetry.key in live or self._registry.known_anchor(telemetry.key) is not None):
                kept.append((index, message, telemetry))
            else:
                acks[index] = HOLD
        return kept

    # -- one message -------------------------------------------------------------------------
    def _decode(self, message: Message) -> Telemetry | None:
        """The telemetry of ``message``, or None once any other kind was dealt with."""
        try:
            topic = message.parsed or parse_topic(message.topic)
        except TopicError as err:
            reason = Reason.BAD_NAME if err.bad_name else Reason.BAD_TOPIC
            self._reject(message, message.topic, Reject(reason=reason, detail=str(err)))
            return None
        if topic.kind == "telemetry":
            decoded = decode_telemetry(topic, message.payload, doc=message.doc)
            if isinstance(decoded, Reject):
                self._reject(message, topic.device, decoded)
                return None
            return decoded
        if topic.kind == "status":
            self._status(topic, message)
        elif topic.kind == "ack":
            ack = decode_ack(topic.site, topic.device, message.payload) if message.payload else None
            if ack is not None:
                self._registry.adopt_ack(ack)
        else:
            _LOGGER.debug("ignoring message on %s", message.topic)
        return None

    def _entries(self, message: Message, telemetry: Telemetry,
                 anchors: Mapping[BootKey, int]) -> Spooled | None:
        anchor = anchors.get(telemetry.key)
        if anchor is None and telemetry.needs_anchor:
            anchor = self._anchor(telemetry, message.received_ms)
        try:
            return spool_entries(telemetry, anchor_ms=anchor, received_ms=message.received_ms)
        except LineProtocolError as err:  # decode should make this impossible
            reject = Reject(reason=Reason.BAD_NAME, detail=f"cannot encode: {err}")
            self._reject(message, telemetry.device, reject)
            return None

    def _reject(self, message: Message, device: str, reject: Reject) -> None:
        self._rejects.record(source=f"{message.source}:{message.topic}", device=device,
                             reject=reject, raw=message.payload)

    def _anchor(self, telemetry: Telemetry, received_ms: int) -> int | None:
        """The boot's anchor: stored, adopted from the retained ack, or made from ``up``."""
        if telemetry.up_ms is None:
            return self._registry.known_anchor(telemetry.key)
        return self._registry.anchor(telemetry.key, candidate_ms=received_ms - telemetry.up_ms)

    def _status(self, topic: Topic, message: Message) -> None:
        if not message.payload:  # a cleared retained status
            return
        decoded = decode_status(topic, message.payload, doc=message.doc)
        if isinstance(decoded, Reject):
            self._reject(message, topic.device, decoded)
            return
        if self._registry.note_status(site=decoded.site, device=decoded.device,
                                      state=decoded.state, until_ms=decoded.until_ms,
                                      received_ms=message.received_ms, ver=decoded.ver, ota=decoded.ota):
            _LOGGER.info("device %s/%s is %s", decoded.site, decoded.device, decoded.state)

