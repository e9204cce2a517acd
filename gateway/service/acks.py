"""The end-to-end ack: what the gateway tells a device it may forget (DESIGN.md, Topics).

``{"boot": B, "seq": S, "anchor": A}`` on ``sen/v1/{site}/{device}/ack``, retained, QoS1:
every reading of boot B up to seq S (and of older boots) is committed to the spool; A is
the boot's clock anchor (Unix ms; 0 when the gateway has none for the boot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.service.topics import ack_topic


@dataclass(frozen=True, kw_only=True)
class Ack:
    site: str
    device: str
    boot: int
    seq: int
    anchor: int

    def payload(self) -> dict[str, int]:
        return {"boot": self.boot, "seq": self.seq, "anchor": self.anchor}

    def topic(self) -> str:
        return ack_topic(self.site, self.device)

    def encode(self) -> bytes:
        return json.dumps(self.payload(), separators=(",", ":")).encode("ascii")

    def covers(self, other: Ack) -> bool:
        """True when this ack says at least as much as ``other`` (same or later boot/seq)."""
        return (self.boot, self.seq) >= (other.boot, other.seq)


def decode_ack(site: str, device: str, payload: bytes) -> Ack | None:
    """A retained ack read back from the broker, or None when it is not a valid one."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    values = [doc.get(k) for k in ("boot", "seq", "anchor")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in values):
        return None
    boot, seq, anchor = (int(v) for v in values)  # type: ignore[arg-type]
    return Ack(site=site, device=device, boot=boot, seq=seq, anchor=anchor)
