"""The supervisor of `--workers N` folds what each worker committed into one registry: acks cover
the union, and a reading is counted once whichever worker told of it (no broker, no processes)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.service.acks import Ack
from gateway.service.identity import BootKey
from gateway.service.intake import Intake
from gateway.service.options import GatewayOptions
from gateway.service.registry import Registry
from gateway.service.sessions import SessionInput
from gateway.service.supervisor import Supervisor

KEY = BootKey("lab", "dev-1", 7, 1)


class _Acks(SessionInput):
    def __init__(self, options: GatewayOptions, intake: Intake) -> None:
        super().__init__(options, intake, topics=())
        self.noted: list[Ack] = []

    def note_ack(self, ack: Ack) -> None:
        self.noted.append(ack)

    def publish_acks(self, *, force: bool = False) -> None:
        return None


def _note(seqs: list[int], added: int) -> tuple[Any, ...]:
    return (KEY, seqs, added, len(seqs) - added, 1_000, 2_000, None, None)


def test_acks_cover_the_union_and_readings_are_counted_once(tmp_path: Path) -> None:
    options = GatewayOptions(mqtt_url="mqtt://127.0.0.1:1", influx_url="http://127.0.0.1:2", database="t",
                             spool_dir=tmp_path, workers=2)
    registry = Registry(tmp_path)
    intake: Any = SimpleNamespace(on_batch_end=lambda callback: None)  # never started: nothing comes in
    acks = _Acks(options, intake)
    parts: Any = SimpleNamespace(mqtt=acks, counters=lambda: {"received": 0, "readings": 0, "duplicates": 0})
    supervisor = Supervisor(options, parts, registry)
    try:
        supervisor.fold(([_note([1, 2], 2)], [(KEY, 123)]))  # worker 0
        supervisor.fold(([_note([4], 1)], [(KEY, None)]))  # worker 1: seq 3 not yet in
        assert [a.seq for a in acks.noted] == [2, 2]  # a hole at 3: the ack waits below it
        supervisor.fold(([_note([3], 1)], [(KEY, None)]))  # worker 0 again
        supervisor.fold(([_note([4], 1)], [(KEY, None)]))  # a re-sent copy of 4 that worker 0 spooled too
        supervisor.fold(([_note([5], 0)], [(KEY, None)]))  # worker 1 died before telling 5; told on redelivery
        assert [a.seq for a in acks.noted][-3:] == [4, 4, 5] and acks.noted[-1].anchor == 123
        merged = supervisor.merged(parts.counters())
        assert (merged["readings"], merged["duplicates"], merged["received"]) == (5, 1, 5)
        assert registry.snapshot()[0].readings == 5
    finally:
        registry.close()
