"""What goes into the spool and what comes out of it: entries, commit results, batches, refused
lines, dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple


@dataclass(frozen=True, kw_only=True)
class Entry:
    """A line to spool; ``key`` (optional) makes a second entry with the same key a no-op."""

    line: str
    key: str | None = None


class CommitResult(NamedTuple):  # one per message of a group commit: a tuple is the cheapest to make
    added: int
    duplicates: int


@dataclass(frozen=True, kw_only=True)
class Batch:
    """The oldest pending lines, in spool order; ``oldest_ms`` is when the first was added.

    ``ids`` are spool rows; row ``ids[i]`` is ``texts[i]``, which holds ``sizes[i]`` lines joined
    by newlines (all 1 unless rows of several lines were committed as a :class:`~ingest.ranges.Run`).
    A write sends the rows' texts as they are (:meth:`payload`); ``lines`` splits them only for
    what needs them one by one (a refused row narrowed down).
    """

    ids: tuple[int, ...]
    texts: tuple[str, ...]
    oldest_ms: int
    sizes: tuple[int, ...]

    def __len__(self) -> int:
        return self.count

    @cached_property
    def count(self) -> int:
        return sum(self.sizes)

    @cached_property
    def lines(self) -> tuple[str, ...]:
        if len(self.texts) == self.count:
            return self.texts
        return tuple(line for text, n in zip(self.texts, self.sizes, strict=True)
                     for line in (text.split("\n") if n > 1 else (text,)))

    def rows(self, start: int, stop: int) -> Batch:
        """The batch of rows ``ids[start:stop]``."""
        return Batch(ids=self.ids[start:stop], texts=self.texts[start:stop], oldest_ms=self.oldest_ms,
                     sizes=self.sizes[start:stop])

    def payload(self) -> bytes:
        return ("\n".join(self.texts) + "\n").encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class Refused:
    """A line InfluxDB refused, to be set aside as a dead letter, and why."""

    line: str
    reason: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A rejected message (``source`` ``mqtt:TOPIC``, ``serial:PORT:TOPIC``) or a refused line
    (``influx``). ``raw`` is all of it unless ``size`` (the original size) is larger: then
    only a sample was kept (:mod:`ingest.deadletters`), which cannot be replayed."""

    id: int
    added_ms: int
    source: str
    reason: str
    detail: str
    raw: bytes
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.raw))

    @property
    def whole(self) -> bool:
        return self.size <= len(self.raw)
