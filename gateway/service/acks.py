"""The end-to-end ack: what the gateway tells a device it may forget (DESIGN.md, End-to-end acks).

``{"fid": F, "boot": B, "seq": S, "anchor": A}`` on ``sen/v1/{site}/{device}/ack``, retained,
QoS1: every reading of boot B of flash F up to seq S (and of older boots of F) is committed to
the spool; A is the boot's clock anchor (Unix ms; 0 when the gateway has none for the boot).
A board ignores an ack whose ``fid`` is not its own; ``fid`` 0 is a board that sends none.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from gateway.service.identity import BootKey
from gateway.service.topics import ack_topic

_U32_MAX = 2**32 - 1


class Ack(NamedTuple):  # one per telemetry message committed: a tuple is the cheapest to make
    site: str
    device: str
    boot: int
    seq: int
    anchor: int
    fid: int = 0

    @property
    def key(self) -> BootKey:
        return BootKey(self.site, self.device, self.fid, self.boot)

    def payload(self) -> dict[str, int]:
        return {"fid": self.fid, "boot": self.boot, "seq": self.seq, "anchor": self.anchor}

    def topic(self) -> str:
        return ack_topic(self.site, self.device)

    def encode(self) -> bytes:  # payload() as compact JSON
        return b'{"fid":%d,"boot":%d,"seq":%d,"anchor":%d}' % (self.fid, self.boot, self.seq, self.anchor)

    def covers(self, other: Ack) -> bool:
        """True when this ack says at least as much as ``other`` (same flash; same or later
        boot and seq)."""
        return self.fid == other.fid and (self.boot, self.seq) >= (other.boot, other.seq)


def decode_ack(site: str, device: str, payload: bytes) -> Ack | None:
    """A retained ack read back from the broker, or None when it is not a valid one. An ack
    without ``fid`` (a gateway that predates it) is for flash 0."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    values = [doc.get(k) for k in ("boot", "seq", "anchor")] + [doc.get("fid", 0)]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in values):
        return None
    boot, seq, anchor, fid = (int(v) for v in values)  # type: ignore[arg-type]
    if fid > _U32_MAX or boot > _U32_MAX or seq > _U32_MAX:
        return None
    return Ack(site=site, device=device, boot=boot, seq=seq, anchor=anchor, fid=fid)
