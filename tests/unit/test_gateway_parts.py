"""Acks, gaps, `sen status`, group commit, the full-spool policy and the configuration."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path

import pytest

from gateway.service import config
from gateway.service.acks import Ack, decode_ack
from gateway.service.devices import BootState
from gateway.errors import OptionsError
from gateway.service.handler import Handler, Message
from gateway.service.intake import Intake
from gateway.service.main import _GC_THRESHOLDS, tune_gc
from gateway.service.registry import Registry
from gateway.service.sample import SAMPLE
from gateway.service.rejects import RejectLog
from gateway.ops.status import format_table, read_devices
from ingest.errors import SpoolError
from ingest.spool import Entry, Spool

TOPIC = "sen/v1/lab/dev-1/telemetry"


def _env(seqs: list[int], boot: int = 3, lo: int | None = None, ob: int | None = None) -> bytes:
    doc: dict[str, object] = {"v": 1, "dev": "dev-1", "boot": boot, "up": 10_000,
                              "r": [{"seq": s, "up": 5_000 + s, "m": {"t_c": 1.0}} for s in seqs]}
    if lo is not None:
        doc["lo"] = lo
    if ob is not None:
        doc["ob"] = ob
    return json.dumps(doc).encode()


@pytest.fixture
def parts(tmp_path: Path):  # type: ignore[no-untyped-def]
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    yield Handler(spool=spool, registry=registry, rejects=RejectLog(spool)), spool, registry
    spool.close()
    registry.close()


def test_handle_returns_the_ack_of_the_committed_readings(parts) -> None:  # type: ignore[no-untyped-def]
    handler, spool, _ = parts
    ack = handler.handle(TOPIC, _env([1, 2]), received_ms=100_000)
    assert ack == Ack(site="lab", device="dev-1", boot=3, seq=2, anchor=90_000)
    assert ack.payload() == {"fid": 0, "boot": 3, "seq": 2, "anchor": 90_000}  # fid 0: no fid sent
    assert spool.depth() == 2
    assert handler.handle(TOPIC, _env([1, 2]), received_ms=200_000) == ack  # redelivery: same ack
    assert handler.handle(TOPIC, b"nonsense", received_ms=1) is None


def test_a_knowingly_dropped_range_is_a_gap_in_sen_status(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler, _, registry = parts
    handler.handle(TOPIC, _env([1, 2]), received_ms=100_000)
    handler.handle(TOPIC, _env([5, 6]), received_ms=100_500)  # 3 and 4 were dropped by the board
    registry.flush()
    rows = read_devices(tmp_path)
    assert [(r.device, r.highest_seq, r.gaps) for r in rows] == [("dev-1", 6, [(3, 4)])]
    table = format_table(rows, now_ms=101_000)
    assert "2 missing (3-4)" in table and "lab/dev-1" in table


def test_the_ack_stops_below_a_gap_until_the_readings_come_again(parts) -> None:  # type: ignore[no-untyped-def]
    handler, _, _ = parts
    assert handler.handle(TOPIC, _env([1, 2]), received_ms=100_000).seq == 2
    # 3 and 4 were lost on the way (a frame, a message before the subscription): not acked.
    assert handler.handle(TOPIC, _env([5, 6]), received_ms=100_100).seq == 2
    assert handler.handle(TOPIC, _env([3, 4]), received_ms=100_200).seq == 6


def test_lo_settles_a_knowingly_dropped_range(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    handler, _, registry = parts
    handler.handle(TOPIC, _env([1, 2], lo=1), received_ms=100_000)
    ack = handler.handle(TOPIC, _env([5, 6], lo=5), received_ms=100_100)  # the board dropped 3-4
    assert ack is not None and ack.seq == 6
    registry.flush()
    assert [r.gaps for r in read_devices(tmp_path)] == [[(3, 4)]], "sen status still shows the drop"


def test_an_older_boot_still_held_is_acked_before_the_newer_one(parts) -> None:  # type: ignore[no-untyped-def]
    handler, _, _ = parts
    handler.handle(TOPIC, _env([1, 2], boot=3), received_ms=100_000)
    # Rebooted into boot 4; boot 3's records 3-4 are still in the outbox and got lost on the way.
    ack = handler.handle(TOPIC, _env([1], boot=4, ob=3), received_ms=100_100)
    assert ack is not None and (ack.boot, ack.seq) == (3, 2), "an ack for boot 4 would free 3-4 unseen"
    ack = handler.handle(TOPIC, _env([3, 4], boot=3), received_ms=100_200)
    assert ack is not None and (ack.boot, ack.seq) == (3, 4)
    ack = handler.handle(TOPIC, _env([2], boot=4), received_ms=100_300)  # nothing older left
    assert ack is not None and (ack.boot, ack.seq) == (4, 2)
    assert handler.handle(TOPIC, _env([3], boot=4, ob=4), received_ms=100_400).boot == 4  # ob >= boot: no-op


def test_the_ack_floor_survives_a_restart(tmp_path: Path) -> None:
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool))
    handler.handle(TOPIC, _env([1, 2]), received_ms=100_000)
    handler.handle(TOPIC, _env([5]), received_ms=100_000)
    registry.close()
    spool.close()
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool))
    assert handler.handle(TOPIC, _env([3, 4]), received_ms=100_000).seq == 5
    registry.close()
    spool.close()


def test_gaps_fill_and_acks_never_go_down(parts) -> None:  # type: ignore[no-untyped-def]
    state = BootState(boot=1)
    state.note([1, 4, 9])
    state.note([2])
    assert state.gaps == [(3, 3), (5, 8)] and state.highest == 9
    assert state.contiguous == 2
    state.settle_below(6)
    assert state.contiguous == 5 and state.gaps == [(3, 3), (5, 8)]
    handler, _, registry = parts
    registry.adopt_ack(Ack(site="lab", device="dev-1", boot=3, seq=50, anchor=77))
    ack = handler.handle(TOPIC, _env([10]), received_ms=100_000)
    assert ack is not None and ack.seq == 50 and ack.anchor == 77  # adopted, not lowered
    assert decode_ack("lab", "dev-1", b'{"boot":1,"seq":-1,"anchor":0}') is None


def test_group_commit_acks_each_message_after_its_batch(parts) -> None:  # type: ignore[no-untyped-def]
    handler, spool, _ = parts
    intake = Intake(handler, spool, max_batch=100)
    done: list[int] = []
    all_done = threading.Event()
    for seq in range(1, 51):
        msg = Message(topic=TOPIC, payload=_env([seq]), received_ms=100_000)
        intake.put(msg, lambda ack, s=seq: (done.append(s), len(done) == 50 and all_done.set()))
    intake.start()
    assert all_done.wait(10)
    intake.stop()
    assert done == list(range(1, 51)) and spool.depth() == 50 and intake.batches < 50


def test_a_burst_takes_no_more_than_the_spools_room(tmp_path: Path) -> None:
    spool, registry = Spool(tmp_path, max_lines=30), Registry(tmp_path)
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool))
    intake = Intake(handler, spool, max_batch=500)
    acked: list[int] = []
    for seq in range(1, 151):  # a burst, all queued before the intake looks (one socket read)
        message = Message(topic=TOPIC, payload=_env([seq]), received_ms=100_000)
        intake.put(message, lambda ack, s=seq: acked.append(s))
    intake.start()
    try:
        pause = threading.Event()  # never set: a sleep
        for _ in range(500):
            if spool.full or pause.wait(0.01):
                break
        pause.wait(0.3)  # time for more batches, were any taken
        assert spool.depth() == 30 and acked == list(range(1, 31)) and intake.waiting == 120
    finally:
        intake.stop()
        spool.close()
        registry.close()


def test_full_spool_takes_nothing_and_disk_full_raises(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_lines=2)
    spool.commit([Entry(line="m f=1 1"), Entry(line="m f=2 2")])
    assert spool.full
    spool._db.execute("PRAGMA max_page_count = 1")  # what a full disk looks like to SQLite
    with pytest.raises(SpoolError):
        spool.commit([Entry(line="m f=3 " + "x" * 10_000)])
    assert spool.pending == 2
    spool.close()


def test_config_sample_documents_every_key_and_errors_name_key_and_line(tmp_path: Path) -> None:
    sample = SAMPLE.read_text()
    for section, table in config.load_sample().items():
        for key in table:
            line = config._line_of(sample, section, key)
            assert line and sample.splitlines()[line - 2].startswith("#"), f"{section}.{key} undocumented"
    bad = tmp_path / "gw.toml"
    bad.write_text('[mqtt]\nurl = "mqtt://h:1"\n\n[influx]\nbatch_size = "many"\n')
    with pytest.raises(OptionsError, match=r"gw.toml:5: influx.batch_size"):
        config.load(bad, env={})
    bad.write_text('[mqtt]\nurl = "mqtt://h:1"\nspeed = 3\n')
    with pytest.raises(OptionsError, match=r"gw.toml:3: unknown key mqtt.speed"):
        config.load(bad, env={})
    bad.write_text('[influx]\nbatch_size = 0\n')
    with pytest.raises(OptionsError, match=r"gw.toml:2: influx.batch_size"):
        config.load(bad, env={})
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    good = tmp_path / "ok.toml"
    good.write_text(f'[influx]\ntoken_file = "{secret}"\n')
    options = config.load(good, env={"SEN_MQTT_URL": "mqtt://b:2", "SEN_INFLUX_BATCH_SIZE": "7"},
                          flags={"batch_size": 9})
    assert options.influx_token == "s3cret" and "s3cret" not in repr(options)
    assert options.mqtt_url == "mqtt://b:2" and options.batch_size == 9
    with pytest.raises(OptionsError, match="SEN_INFLUX_GZIP"):
        config.load(None, env={"SEN_INFLUX_GZIP": "maybe"})


def test_serial_ports_come_from_the_config_file_or_the_flags(tmp_path: Path) -> None:
    conf = tmp_path / "sen.toml"
    conf.write_text('[serial]\nports = "/dev/ttyUSB0, /dev/serial/by-id/*"\nbaudrate = 921600\n')
    options = config.load(conf, env={})
    assert options.serial_ports == ("/dev/ttyUSB0", "/dev/serial/by-id/*")
    assert options.serial_baudrate == 921600
    assert config.load(conf, env={}, flags={"serial_ports": ("/dev/ttyACM0",)}).serial_ports == ("/dev/ttyACM0",)
    assert config.load(None, env={}).serial_ports == ()
    conf.write_text('[serial]\nbaudrate = "fast"\n')
    with pytest.raises(OptionsError, match=r"sen.toml:2: serial.baudrate"):
        config.load(conf, env={})


def test_the_intake_queue_drops_qos0_past_its_bound_and_never_qos1(parts) -> None:  # type: ignore[no-untyped-def]
    handler, spool, _ = parts
    intake = Intake(handler, spool, max_waiting=5)  # not started: nothing drains
    message = Message(topic=TOPIC, payload=_env([1]), received_ms=1)
    for _ in range(8):
        intake.put(message, lambda ack: None, can_drop=True)
    for _ in range(3):
        intake.put(message, lambda ack: None)  # QoS1: bounded by the receive maximum, never dropped
    assert (intake.waiting, intake.dropped) == (8, 3)


def test_tune_gc_freezes_start_up_and_spaces_young_collections() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000  # the modules, classes and functions loaded so far
        assert gc.get_threshold() == _GC_THRESHOLDS and _GC_THRESHOLDS[0] >= 10 * before[0]
    finally:  # the rest of this test process collects as before
        gc.unfreeze()
        gc.set_threshold(*before)
