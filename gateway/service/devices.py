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
from typing import TypeGuard

MAX_GAPS_PER_BOOT = 200  # past this the oldest ranges merge into one, so memory stays bounded
BOOTS_KEPT = 3  # boots of a device kept in memory: the newest few (an older one's records replay first)
SENSORS_KEPT = 32  # sensors of a device whose last reading is kept
FIRST_SEQ = 1


def gaps_text(gaps: list[tuple[int, int]]) -> str:
    return ",".join(f"{lo}-{hi}" for lo, hi in gaps)


def parse_gaps(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, text.split(",")):
        lo, hi = part.split("-")
        out.append((int(lo), int(hi)))
    return out


@dataclass(kw_only=True)
class BootState:
    boot: int
    fid: int = 0
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

    def _next_in_order(self, seqs: Iterable[int]) -> TypeGuard[list[int]]:
        """``seqs`` are the seqs right after the highest, in order (the usual: one message after another)."""
        if type(seqs) is not list or not seqs or seqs[0] != self.highest + 1:
            return False
        last = seqs[0] + len(seqs) - 1
        return seqs[-1] == last and (len(seqs) < 3 or seqs == list(range(seqs[0], last + 1)))

    def note(self, seqs: Iterable[int]) -> bool:
        """Fold in seqs of this boot; True when the highest seq or the gaps changed."""
        if self._next_in_order(seqs):
            self.highest = seqs[-1]
            return True
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

    def take(self, seqs: list[int]) -> int:
        """:meth:`note` ``seqs``; how many distinct of them were new to this boot (:meth:`unseen`)."""
        if self._next_in_order(seqs):
            self.highest = seqs[-1]
            return len(seqs)
        fresh = self.unseen(seqs)
        self.note(seqs)
        return fresh

    def unseen(self, seqs: Iterable[int]) -> int:
        """How many distinct ``seqs`` are above the highest seen or in a gap (new to this boot)."""
        return sum(1 for seq in set(seqs) if seq > self.highest or any(lo <= seq <= hi for lo, hi in self.gaps))

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
    ver: str | None = None  # from its status: the application version it runs
    ota: str | None = None  # from its status: its OTA state (compact JSON)
    # (fid, boot) -> state, in the order the boots were first seen: a flash id is random, so
    # "newest" is the order of arrival, not the key's.
    boots: dict[tuple[int, int], BootState] = field(default_factory=dict)
    sensors: dict[str, int] = field(default_factory=dict)  # sensor -> its last reading's time

    @property
    def latest(self) -> BootState | None:
        """The boot seen most recently for the first time (the board's current one)."""
        return next(reversed(self.boots.values())) if self.boots else None

    def boot_state(self, fid: int, boot: int) -> BootState:
        found = self.boots.get((fid, boot))
        if found is None:
            found = self.boots[(fid, boot)] = BootState(boot=boot, fid=fid)
            same_flash = [key for key in self.boots if key[0] == fid]
            # Of one flash keep the highest boots; other flashes' boots go first (oldest first).
            while len(self.boots) > BOOTS_KEPT:
                older_flash = [key for key in self.boots if key[0] != fid]
                del self.boots[older_flash[0] if older_flash else min(same_flash)]
                same_flash = [key for key in self.boots if key[0] == fid]
        return found

    def note_sensor(self, sensor: str, last_reading_ms: int) -> None:
        if sensor in self.sensors or len(self.sensors) < SENSORS_KEPT:
            self.sensors[sensor] = max(self.sensors.get(sensor, 0), last_reading_ms)

    @property
    def missing(self) -> int:
        return sum(b.missing for b in self.boots.values())
