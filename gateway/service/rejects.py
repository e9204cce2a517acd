"""Rejected messages: counted, logged at most once per device per minute, kept as dead letters.

The log's memory is bounded: a device's entry goes once its minute is over (what it held back
is reported then), the names kept are cut to :data:`NAME_MAX` characters (a bad topic is its
own "device"), and past :data:`MAX_DEVICES` devices at once the others share one entry, so a
flood of names cannot grow it. The counts by reason are a closed set (the reject reasons).
The dead letters themselves are bounded by the spool (:mod:`ingest.deadletters`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from ingest.spool import Spool

from gateway.service.decode import Reject

_LOGGER = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
MAX_DEVICES = 1000
NAME_MAX = 128
OTHERS = "(other devices)"


class RejectLog:
    def __init__(self, spool: Spool, *, log_every_s: float = LOG_EVERY_S,
                 max_devices: int = MAX_DEVICES) -> None:
        self._spool = spool
        self._log_every_s = log_every_s
        self._max_devices = max_devices
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}  # insertion order: oldest report first
        self._suppressed: Counter[str] = Counter()

    def record(self, *, source: str, device: str, reject: Reject, raw: bytes) -> None:
        """Keep ``raw`` as a dead letter (durably), count it, maybe log it."""
        self._spool.add_dead_letter(source=source, reason=str(reject.reason),
                                    detail=reject.detail, raw=raw)
        now = time.monotonic()
        with self._lock:
            self._counts[str(reject.reason)] += 1
            expired = self._expire(now)
            key = device[:NAME_MAX]
            if key not in self._last_logged and len(self._last_logged) >= self._max_devices:
                key = OTHERS
            last = self._last_logged.get(key)
            if last is not None and now - last < self._log_every_s:
                self._suppressed[key] += 1
                suppressed = None
            else:
                self._last_logged[key] = now
                suppressed = self._suppressed.pop(key, 0) + expired.pop(key, 0)
        for name, count in expired.items():
            _LOGGER.warning("%s more rejected message(s) from %s since its last report", count, name)
        if suppressed is not None:
            _LOGGER.warning("rejected message from %s (%s): %s: %s%s", device[:NAME_MAX], source[:NAME_MAX],
                            reject.reason, reject.detail,
                            f" ({suppressed} more rejected since last report)" if suppressed else "")

    def _expire(self, now: float) -> dict[str, int]:
        """Forget devices whose minute is over (oldest first); what they held back, to log."""
        expired: dict[str, int] = {}
        while self._last_logged:
            name, last = next(iter(self._last_logged.items()))
            if now - last < self._log_every_s:
                break
            del self._last_logged[name]
            if held := self._suppressed.pop(name, 0):
                expired[name] = held
        return expired

    @property
    def tracked(self) -> int:
        """Devices the log remembers now (bounded by ``max_devices`` + 1)."""
        with self._lock:
            return len(self._last_logged)

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
