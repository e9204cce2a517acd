"""Capped exponential backoff with full jitter, for retrying connection errors; the state of an
outage (:class:`Outage`)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from ingest.errors import OptionsError


@dataclass(kw_only=True)
class Backoff:
    """Delays of ``initial_s * 2**n`` capped at ``max_s``, each scaled by a random jitter.

    The jitter draws from ``[1 - jitter, 1]`` so many gateways restarting together do not
    retry in lockstep. :meth:`reset` after a success.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.5
    _attempt: int = field(default=0, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise OptionsError(f"bad backoff bounds: initial_s={self.initial_s}, max_s={self.max_s}")
        if not 0.0 <= self.jitter <= 1.0:
            raise OptionsError(f"jitter must be within [0, 1], got {self.jitter}")

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last :meth:`reset`."""
        return self._attempt

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base up to the cap."""
        base = min(self.max_s, self.initial_s * (2.0 ** min(self._attempt, 32)))
        self._attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a success)."""
        self._attempt = 0


class Outage:
    """A server that does not answer: since when, the failures counted, the delay it asked for
    (``Retry-After``), and when to log: the first failure, then every ``log_every_s``."""

    def __init__(self, log_every_s: float = 60.0) -> None:
        self.since: float | None = None  # monotonic time of the first failure; None: it answers
        self.failures = 0  # since the start, over every outage
        self._retry_after_s: float | None = None  # the server's word, until taken
        self._log_every_s = log_every_s
        self._logged: float | None = None
        self._lock = threading.Lock()

    def failed(self, retry_after_s: float | None = None) -> bool:
        """Count a failure; True when it is to be logged."""
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            self._retry_after_s = retry_after_s
            if self.since is None:
                self.since = now
            if self._logged is not None and now - self._logged < self._log_every_s:
                return False
            self._logged = now
            return True

    def ended(self) -> float | None:
        """It answered: the seconds the outage lasted (None: there was none)."""
        if self.since is None:
            return None
        with self._lock:
            since, self.since, self._logged = self.since, None, None
        return None if since is None else time.monotonic() - since

    def take_retry_after(self) -> float | None:
        """The delay the last failure's answer asked for, once (None: it asked for none)."""
        with self._lock:
            value, self._retry_after_s = self._retry_after_s, None
        return value
