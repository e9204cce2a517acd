"""The supervisor of `--workers N` folds what each worker committed into one registry: acks cover
the union, and a reading is counted once whichever worker told of it (no broker, no processes)."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.service import forking
from gateway.service.acks import Ack
from gateway.service.devices import BootState
from gateway.service.identity import BootKey
from gateway.service.intake import Intake
from gateway.service.options import GatewayOptions
from gateway.service.registry import Note, Registry
from gateway.service.sessions import SessionInput
from gateway.service.supervisor import Supervisor

KEY = BootKey("lab", "dev-1", 7, 1)


class _Acks(SessionInput):
    def __init__(self, options: GatewayOptions, intake: Intake) -> None:
        super().__init__(options, intake, topics=())
        self.noted: list[Ack] = []
        self.boots: list[BootKey] = []

    def note_acks(self, acks: Iterable[Ack | BootKey]) -> None:
        """Each boot's ack as publish_acks would ask for it now; the boots in the order given."""
        boots = [a for a in acks if isinstance(a, BootKey)]
        self.boots += boots
        self.noted += self._resolve({(b.site, b.device): b for b in boots}).values()

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


def test_a_device_back_on_an_older_boot_in_one_batch_ends_on_that_boots_ack(tmp_path: Path) -> None:
    """A batch's acks go once per boot, in the order of each boot's last mention: the device's
    latest word wins, as it did when each message's ack was noted in turn."""
    options = GatewayOptions(mqtt_url="mqtt://127.0.0.1:1", influx_url="http://127.0.0.1:2", database="t",
                             spool_dir=tmp_path, workers=2)
    registry = Registry(tmp_path)
    intake: Any = SimpleNamespace(on_batch_end=lambda callback: None)
    acks = _Acks(options, intake)
    parts: Any = SimpleNamespace(mqtt=acks, counters=lambda: {})
    supervisor = Supervisor(options, parts, registry)
    old, new = KEY._replace(boot=1), KEY._replace(boot=2)
    try:
        notes: list[Note] = [(old, [1], 1, 0, 1, 1, None, None), (new, [1], 1, 0, 2, 2, None, None)]
        supervisor.fold((notes, [(old, None), (new, None), (old, None)]))  # old boot, new boot, old boot again
        assert [b.boot for b in acks.boots] == [2, 1]
        supervisor.fold(([], [(old, None), (new, None)]))
        assert [b.boot for b in acks.boots][-2:] == [1, 2]
    finally:
        registry.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=1, max_value=40), max_size=6), max_size=12))
def test_take_counts_what_unseen_counts_and_notes_what_note_notes(batches: list[list[int]]) -> None:
    fast, slow = BootState(boot=1), BootState(boot=1)
    for seqs in batches:
        expected = slow.unseen(seqs)
        slow.note(seqs)
        assert fast.take(seqs) == expected
        assert (fast.highest, fast.gaps) == (slow.highest, slow.gaps)


def test_a_boot_key_crosses_the_pipe_as_itself() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps([KEY, KEY], protocol=protocol))
        assert type(back[0]) is BootKey and back[0] == KEY and back[0].stream == KEY.stream and back[1] is back[0]



def test_workers_are_forks_of_a_server_or_spawned_when_it_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import forkserver

    assert forking.worker_context().get_start_method() == "forkserver"  # a POSIX system

    def refuse() -> None:
        raise PermissionError("no temporary folder")

    monkeypatch.setattr(forkserver, "ensure_running", refuse)
    monkeypatch.setattr(forking, "_failed", [])
    forking.start_early()
    assert forking.worker_context().get_start_method() == "spawn"
