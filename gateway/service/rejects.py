"""Rejected messages: counted, logged at most once per device per minute, kept as dead letters."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from ingest.spool import Spool

from gateway.service.decode import Reject

_LOGGER = logging.getLogger(__name__)

LOG_EVERY_S = 60.0


class RejectLog:
    def __init__(self, spool: Spool, *, log_every_s: float = LOG_EVERY_S) -> None:
        self._spool = spool
        self._log_every_s = log_every_s
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def record(self, *, source: str, device: str, reject: Reject, raw: bytes) -> None:
        """Keep ``raw`` as a dead letter (durably), count it, maybe log it."""
        self._spool.add_dead_letter(source=source, reason=str(reject.reason),
                                    detail=reject.detail, raw=raw)
        now = time.monotonic()
        with self._lock:
            self._counts[str(reject.reason)] += 1
            last = self._last_logged.get(device)
            if last is not None and now - last < self._log_every_s:
                self._suppressed[device] += 1
                return
            self._last_logged[device] = now
            suppressed = self._suppressed.pop(device, 0)
        _LOGGER.warning("rejected message from %s (%s): %s: %s%s", device, source,
                        reject.reason, reject.detail,
                        f" ({suppressed} more rejected since last report)" if suppressed else "")

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
