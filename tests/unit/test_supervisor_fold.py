"""The supervisor of `--workers N` folds what each worker committed into one registry: acks cover
the union, and a reading is counted once whichever worker told of it (no broker, no processes);
and how its workers are started (forks of the gateway's process, running a stand-in)."""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.service import forking
from gateway.service.acks import Ack
from gateway.service.devices import BootState
from gateway.service.identity import BootKey, BootTuple
from gateway.service.intake import Intake
from gateway.service.options import GatewayOptions
from gateway.service.registry import Note, Registry
from gateway.service.sessions import SessionInput
from gateway.service.supervisor import Supervisor
from gateway.service.worker import WorkerRegistry

KEY = BootKey("lab", "dev-1", 7, 1)


class _Acks(SessionInput):
    def __init__(self, options: GatewayOptions, intake: Intake) -> None:
        super().__init__(options, intake, topics=())
        self.noted: list[Ack] = []
        self.boots: list[BootTuple] = []

    def note_acks(self, acks: Iterable[Ack | BootTuple]) -> None:
        """Each boot's ack as publish_acks would ask for it now; the boots in the order given."""
        boots = [a for a in acks if not isinstance(a, Ack)]
        self.boots += boots
        self.noted += self._resolve({(b[0], b[1]): b for b in boots}).values()

    def publish_acks(self, *, force: bool = False) -> None:
        return None


def _note(seqs: list[int], added: int) -> tuple[Any, ...]:
    return (KEY, seqs, added, len(seqs) - added, 1_000, 2_000, None, None)


def _supervisor(directory: Path) -> tuple[Supervisor, _Acks, Registry]:
    """A supervisor of two workers (never started), its acks noted as publish_acks would ask for them."""
    options = GatewayOptions(mqtt_url="mqtt://127.0.0.1:1", influx_url="http://127.0.0.1:2", database="t",
                             spool_dir=directory, workers=2)
    registry = Registry(directory)
    intake: Any = SimpleNamespace(on_batch_end=lambda callback: None)  # never started: nothing comes in
    acks = _Acks(options, intake)
    parts: Any = SimpleNamespace(mqtt=acks, counters=lambda: {})
    return Supervisor(options, parts, registry), acks, registry


def test_acks_cover_the_union_and_readings_are_counted_once(tmp_path: Path) -> None:
    supervisor, acks, registry = _supervisor(tmp_path)
    try:
        supervisor.fold(([_note([1, 2], 2)], [(KEY, 123)]))  # worker 0
        supervisor.fold(([_note([4], 1)], [(KEY, None)]))  # worker 1: seq 3 not yet in
        assert [a.seq for a in acks.noted] == [2, 2]  # a hole at 3: the ack waits below it
        supervisor.fold(([_note([3], 1)], [(KEY, None)]))  # worker 0 again
        supervisor.fold(([_note([4], 1)], [(KEY, None)]))  # a re-sent copy of 4 that worker 0 spooled too
        supervisor.fold(([_note([5], 0)], [(KEY, None)]))  # worker 1 died before telling 5; told on redelivery
        assert [a.seq for a in acks.noted][-3:] == [4, 4, 5] and acks.noted[-1].anchor == 123
        merged = supervisor.merged({"received": 0, "readings": 0, "duplicates": 0})
        assert (merged["readings"], merged["duplicates"], merged["received"]) == (5, 1, 5)
        assert registry.snapshot()[0].readings == 5
    finally:
        registry.close()


def test_a_device_back_on_an_older_boot_in_one_batch_ends_on_that_boots_ack(tmp_path: Path) -> None:
    """A batch's acks go once per boot, in the order of each boot's last mention: the device's
    latest word wins, as it did when each message's ack was noted in turn."""
    supervisor, acks, registry = _supervisor(tmp_path)
    old, new = KEY._replace(boot=1), KEY._replace(boot=2)
    try:
        notes: list[Note] = [(old, [1], 1, 0, 1, 1, None, None), (new, [1], 1, 0, 2, 2, None, None)]
        supervisor.fold((notes, [(old, None), (new, None), (old, None)]))  # old boot, new boot, old boot again
        assert [b[3] for b in acks.boots] == [2, 1]
        supervisor.fold(([], [(old, None), (new, None)]))
        assert [b[3] for b in acks.boots][-2:] == [1, 2]
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=1), st.integers(min_value=1, max_value=2),
                          st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=3), st.booleans()),
                max_size=30))
@example([(0, 1, [1], True), (0, 1, [3], True), (1, 1, [2], True)])  # a hole, filled by the other worker
@example([(0, 1, [2], True), (0, 1, [1], False), (0, 1, [1], True)])  # told only when it came again
@example([(0, 1, [1], False), (0, 1, [1], True)])  # a spool's duplicate, the boot's first word
def test_a_fold_counts_and_notes_what_every_worker_committed(sent: list[tuple[int, int, list[int], bool]]) -> None:
    """Messages of two boots, each to one of two workers, in any order, some again, and some
    committed by a worker that died before telling (told when it comes again): each reading
    counted once, when first told of (a boot's first message as its worker's spool counted it),
    the rest as duplicates; and each boot noted as one BootState noting all of them notes it."""
    told: dict[int, set[int]] = {1: set(), 2: set()}  # per boot, what any worker told of
    spools: dict[tuple[int, int], set[int]] = {}  # per (worker, boot), what its spool holds
    expected = {1: BootState(boot=1, fid=7), 2: BootState(boot=2, fid=7)}
    sizes = readings = 0
    with tempfile.TemporaryDirectory() as tmp:
        supervisor, _, registry = _supervisor(Path(tmp))
        try:
            for worker, boot, seqs, telling in sent:
                spool = spools.setdefault((worker, boot), set())
                added = len(set(seqs) - spool)
                spool.update(seqs)
                if not telling:
                    continue
                key = (KEY.site, KEY.device, KEY.fid, boot)
                supervisor.fold(([(key, seqs, added, len(seqs) - added, 1, 1, None, None)], [(key, None)]))
                readings += len(set(seqs) - told[boot]) if told[boot] else added
                told[boot].update(seqs)
                expected[boot].note(seqs)
                sizes += len(seqs)
            merged = supervisor.merged({})
            assert (merged["readings"], merged["duplicates"]) == (readings, sizes - readings)
            device = registry.snapshot()[0] if sizes else None
            for boot, state in expected.items():
                noted = device.boots.get((7, boot)) if device else None
                assert (noted.highest, noted.gaps) == (state.highest, state.gaps) if noted else not told[boot]
            assert device is None or device.readings == merged["readings"]
        finally:
            registry.close()


def test_a_workers_calls_cross_the_pipe_as_plain_tuples_and_fold_into_boot_keys(tmp_path: Path) -> None:
    """The keys go as plain tuples (a BootKey would pickle through Python code), and the
    supervisor makes its acks of them."""
    theirs, ours = multiprocessing.Pipe(duplex=True)
    worker = WorkerRegistry(tmp_path / "w", theirs)
    worker.remember_anchors([(KEY, 123)])
    worker.note_many([_note([1, 2], 2)])
    assert worker.acks_for([KEY]) == [None]  # the supervisor acks
    worker.send_calls()
    kind, calls = ours.recv()
    worker.close()
    notes, wanted = calls
    assert kind == "calls" and type(notes[0][0]) is tuple and type(wanted[0][0]) is tuple
    assert (notes, wanted) == ([_note([1, 2], 2)], [(KEY, 123)])
    supervisor, acks, registry = _supervisor(tmp_path)
    try:
        supervisor.fold(calls)
        assert acks.boots == [KEY] and acks.noted == [Ack("lab", "dev-1", 1, 2, 123, 7)]
    finally:
        registry.close()


def test_later_workers_are_forks_of_a_server_or_spawned_when_it_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import forkserver

    asked: list[str] = []
    monkeypatch.setattr(forking, "_failed", [])
    monkeypatch.setattr(forkserver, "ensure_running", lambda: asked.append("server"))
    assert forking.later_context().get_start_method() == "forkserver"  # a POSIX system

    def refuse() -> None:
        asked.append("refused")
        raise PermissionError("no temporary folder")

    monkeypatch.setattr(forkserver, "ensure_running", refuse)
    assert forking.later_context().get_start_method() == "spawn"
    assert forking.later_context().get_start_method() == "spawn"  # not asked again
    assert asked == ["server", "refused"]


def _until_eof(options: GatewayOptions, index: int, conn: Connection, level: int) -> None:
    """A forked worker's stand-in: says which it is, then waits for the supervisor's end to close."""
    conn.send(index)
    try:
        conn.recv()
    except EOFError:
        return


def test_the_first_workers_are_forks_that_hold_no_other_workers_pipe(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fork closes the supervisor's ends it was born with: closing worker 0's end ends worker
    0 although workers 1 and 2 were forked after it was made (were it held, it would wait on)."""
    from gateway.service import worker

    monkeypatch.setattr(worker, "run_worker", _until_eof)
    options = GatewayOptions(mqtt_url="mqtt://127.0.0.1:1", influx_url="http://127.0.0.1:2", database="t",
                             spool_dir=tmp_path, workers=3)
    started = forking.fork_first(options)
    try:
        assert [conn.recv() for _, conn in started] == [0, 1, 2]
        assert [process.name for process, _ in started] == ["sen-worker-0", "sen-worker-1", "sen-worker-2"]
        for process, conn in started:
            conn.close()
            process.join(10)
            assert process.exitcode == 0
    finally:
        for process, _ in started:
            process.kill()
