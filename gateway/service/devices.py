"""Per-device bookkeeping in memory: state, last seen, boot, highest seq, gaps, duplicates.

Pure logic (no I/O): :class:`gateway.service.registry.Registry` keeps it durable. Seqs run from 1
in each boot, so a hole below the highest seq of a boot is a gap: readings the device
dropped, or lost on the way (a serial frame, a message sent before anyone subscribed).
A late reading that falls into a gap fills it.

What a gateway may ack is the contiguous mark (tests/contract/ack.md): every seq up to it is
spooled here, covered by another gateway's retained ack, or below the ``lo`` the device
declared (knowingly dropped). A gap above ``floor`` blocks the ack until the device sends
those readings again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_GAPS_PER_BOOT = 200  # past this the oldest ranges merge into one, so memory stays bounded
FIRST_SEQ = 1


@dataclass(kw_only=True)
class BootState:
    boot: int
    highest: int = 0  # 0: nothing of this boot seen yet
    gaps: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges, ascending
    floor: int = 0  # every seq <= floor is settled, gaps or not (retained ack, device's lo)

    @property
    def contiguous(self) -> int:
        """The highest seq with nothing unsettled below it: what an ack may cover."""
        for lo, hi in self.gaps:
            if hi > self.floor:
                return max(self.floor, lo - 1)
        return max(self.floor, self.highest)

    def settle_below(self, lo: int) -> None:
        """The device holds nothing of this boot below ``lo``: holes there will never fill."""
        self.floor = max(self.floor, lo - 1)

    @property
    def missing(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.gaps)

    def note(self, seqs: Iterable[int]) -> bool:
        """Fold in seqs of this boot; True when the highest seq or the gaps changed."""
        changed = False
        for seq in sorted(seqs):
            if seq > self.highest:
                if seq > self.highest + 1 and seq > FIRST_SEQ:
                    self.gaps.append((max(self.highest + 1, FIRST_SEQ), seq - 1))
                self.highest = seq
                changed = True
            elif self._fill(seq):
                changed = True
        if len(self.gaps) > MAX_GAPS_PER_BOOT:
            merged = (self.gaps[0][0], self.gaps[-MAX_GAPS_PER_BOOT][1])
            self.gaps = [merged, *self.gaps[-MAX_GAPS_PER_BOOT + 1:]]
        return changed

    def raise_to(self, seq: int) -> None:
        """A gateway (this one earlier, or another) acked up to ``seq``: all of it is spooled."""
        self.floor = max(self.floor, seq)
        if seq > self.highest:
            self.highest = seq

    def _fill(self, seq: int) -> bool:
        for i, (lo, hi) in enumerate(self.gaps):
            if lo <= seq <= hi:
                parts = [(a, b) for a, b in ((lo, seq - 1), (seq + 1, hi)) if a <= b]
                self.gaps[i:i + 1] = parts
                return True
        return False


@dataclass(kw_only=True)
class DeviceState:
    site: str
    device: str
    state: str = "online"
    until_ms: int | None = None
    last_seen_ms: int = 0
    last_reading_ms: int | None = None
    readings: int = 0
    duplicates: int = 0
    boots: dict[int, BootState] = field(default_factory=dict)

    @property
    def boot(self) -> int | None:
        return max(self.boots) if self.boots else None

    def boot_state(self, boot: int) -> BootState:
        found = self.boots.get(boot)
        if found is None:
            found = self.boots[boot] = BootState(boot=boot)
            for old in sorted(self.boots)[:-3]:  # keep the newest few boots in memory
                del self.boots[old]
        return found

    @property
    def missing(self) -> int:
        return sum(b.missing for b in self.boots.values())
