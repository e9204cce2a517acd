"""Capped exponential backoff with full jitter, for retrying connection errors."""

from __future__ import annotations

import random
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
