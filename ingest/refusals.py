"""What of a line InfluxDB refused can still be written.

A line refused for a field type conflict (InfluxDB 1.x/2.x: ``partial write: field type
conflict: input field "x" on measurement "telemetry" is type float, already exists as type
integer dropped=1``) loses only that field: the line is written again without it (same
measurement, tags and timestamp, so ``seq``, ``boot`` and the other metrics land), and the
field alone, as a line of its own, is set aside as a dead letter to replay once the operator
has settled the type. InfluxDB names one conflict per answer, so a line with several is split
field by field. Anything else refused, or a line with nothing left to write, is set aside
whole. Writing a point again is harmless (InfluxDB keeps one per series and timestamp).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest.errors import InfluxBadData, LineProtocolError
from ingest.lineproto import split_field

# The field's name, in plain text or inside the JSON of the answer ({"error":"... \"x\" ..."}).
_CONFLICT = re.compile(r'field type conflict: input field \\?"(?P<key>.+?)\\?" on measurement')
_MAX_SPLITS = 64  # fields split off one line at most; a line with more is set aside whole


class _Writes(Protocol):
    def write(self, payload: bytes) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Salvage:
    """``written``: the line, less ``aside``'s fields, is in InfluxDB; ``aside``: the lines to
    set aside, each with InfluxDB's refusal (the whole line when ``written`` is False)."""

    written: bool
    aside: list[tuple[str, InfluxBadData]] = field(default_factory=list)


def conflict_field(message: str) -> str | None:
    """The field a ``field type conflict`` answer names, or None for any other refusal."""
    found = _CONFLICT.search(message)
    if found is None:
        return None
    return found.group("key").replace('\\"', '"').replace("\\\\", "\\")


def settle_lines(sink: _Writes, lines: Sequence[str], refusal: InfluxBadData) -> list[tuple[str, InfluxBadData, str]]:
    """Write the LINES of a refused row one by one (one line: refused already, with REFUSAL)
    and of a refused line what InfluxDB takes (:func:`salvage`). Returns what is to be set
    aside: (line, InfluxDB's refusal, ``"line"`` or ``"field"``). Raises
    :class:`~ingest.errors.InfluxUnavailable` (the caller keeps the row and retries)."""
    aside: list[tuple[str, InfluxBadData, str]] = []
    for line in lines:
        if len(lines) == 1:
            outcome = salvage(sink, line, refusal)
        else:
            try:
                sink.write((line + "\n").encode("utf-8"))
                continue
            except InfluxBadData as bad:
                outcome = salvage(sink, line, bad)
        kind = "field" if outcome.written else "line"
        aside.extend((part, err, kind) for part, err in outcome.aside)
    return aside


def salvage(sink: _Writes, line: str, refusal: InfluxBadData) -> Salvage:
    """Write what InfluxDB takes of ``line`` (refused with ``refusal``). Raises
    :class:`~ingest.errors.InfluxUnavailable` (the caller keeps the line and retries)."""
    aside: list[tuple[str, InfluxBadData]] = []
    rest, err = line, refusal
    while len(aside) < _MAX_SPLITS:
        key = conflict_field(err.message)
        try:
            parts = split_field(rest, key) if key is not None else None
        except LineProtocolError:
            parts = None
        if parts is None:
            break
        rest, alone = parts
        aside.append((alone, err))
        try:
            sink.write((rest + "\n").encode("utf-8"))
        except InfluxBadData as again:
            err = again
            continue
        return Salvage(written=True, aside=aside)
    return Salvage(written=False, aside=[(line, err)])
