"""Every reading knows its sensor and its device: `s` and the `sensor` tag, (site, device) and
(site, device, fid, boot) as the keys of every record the gateway keeps, bounded integers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.errors import RegistryError
from gateway.ops.status import format_table, read_devices
from gateway.service.decode import Reason, Reject, Telemetry, decode_telemetry
from gateway.service.handler import Handler
from gateway.service.identity import BootKey
from gateway.service.points import to_entries
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from gateway.service.topics import Topic
from ingest.spool import Spool

TS = 1_763_800_000_000


def _env(dev: str = "dev-x", *, boot: int = 1, seqs: range = range(1, 4), fid: int | None = None,
         sensors: tuple[str | None, ...] = ("sht31",), up_only: bool = False, **extra: object) -> bytes:
    readings = []
    for seq in seqs:
        for i, sensor in enumerate(sensors):
            reading: dict[str, object] = {"seq": seq * len(sensors) + i, "m": {"temp_c": 20.0 + i}}
            reading.update({"up": 1000 + seq * 10 + i} if up_only else {"ts": TS + seq * 1000 + i})
            if sensor is not None:
                reading["s"] = sensor
            readings.append(reading)
    doc: dict[str, object] = {"v": 1, "dev": dev, "boot": boot, "up": 5000, "r": readings, **extra}
    if fid is not None:
        doc["fid"] = fid
    return json.dumps(doc).encode()


def _decode(payload: bytes, site: str = "lab", device: str = "dev-x") -> Telemetry | Reject:
    return decode_telemetry(Topic(site=site, device=device, kind="telemetry"), payload)


def test_each_reading_keeps_its_sensor_and_a_reading_without_one_still_decodes() -> None:
    decoded = _decode(_env(sensors=("sht31", "dht20", None)))
    assert isinstance(decoded, Telemetry)
    assert [r.sensor for r in decoded.readings[:3]] == ["sht31", "dht20", None]


@pytest.mark.parametrize(("sensor", "reason"), [
    ("", Reason.BAD_NAME), ("x" * 33, Reason.BAD_NAME), ("SHT31", Reason.BAD_NAME), ("sht 31", Reason.BAD_NAME),
    ('sht31",device=evil', Reason.BAD_NAME), (31, Reason.BAD_TYPE), (None, Reason.BAD_TYPE), (["a"], Reason.BAD_TYPE),
])
def test_a_bad_sensor_name_refuses_the_whole_envelope(sensor: object, reason: Reason) -> None:
    doc = json.loads(_env(sensors=("sht31",)))
    doc["r"][1]["s"] = sensor  # the second reading of three: nothing may be written half-way
    decoded = _decode(json.dumps(doc).encode())
    assert isinstance(decoded, Reject) and decoded.reason == reason, decoded
    assert "r[1].s" in decoded.detail


@pytest.mark.parametrize("name", ["device", "site", "board", "sensor", "time", "seq", "boot"])
def test_a_metric_named_like_a_tag_or_a_schema_field_is_refused(name: str) -> None:
    payload = json.dumps({"v": 1, "dev": "dev-x", "boot": 1, "r": [{"seq": 1, "ts": TS, "m": {name: 1.0}}]})
    decoded = _decode(payload.encode())
    assert isinstance(decoded, Reject) and decoded.reason == Reason.BAD_NAME and "reserved" in decoded.detail


@pytest.mark.parametrize(("key", "value"), [("up", 2**63 - 1), ("boot", 2**32), ("fid", 2**32), ("lo", 2**40)])
def test_integers_beyond_what_a_board_can_send_are_refused(key: str, value: int) -> None:
    decoded = _decode(_env(**{key: value}))
    assert isinstance(decoded, Reject) and decoded.reason == Reason.OUT_OF_RANGE, decoded


def test_a_reading_uptime_beyond_bounds_is_refused() -> None:
    payload = json.dumps({"v": 1, "dev": "dev-x", "boot": 1, "up": 5000,
                          "r": [{"seq": 1, "up": 2**63 - 1, "m": {"t": 1.0}}]}).encode()
    decoded = _decode(payload)
    assert isinstance(decoded, Reject) and decoded.reason == Reason.OUT_OF_RANGE


def test_the_sensor_is_a_tag_and_the_spool_key_holds_site_and_flash() -> None:
    decoded = _decode(_env(sensors=("sht31", None), fid=0xABCDEF, seqs=range(1, 2)))
    assert isinstance(decoded, Telemetry) and decoded.key == BootKey("lab", "dev-x", 0xABCDEF, 1)
    entries = to_entries(decoded, anchor_ms=None, received_ms=TS)
    assert entries[0].line.startswith("telemetry,board=unknown,device=dev-x,sensor=sht31,site=lab ")
    assert entries[1].line.startswith("telemetry,board=unknown,device=dev-x,site=lab ")  # no s: no tag
    assert entries[0].key == f"r/lab/dev-x/{0xABCDEF}/1/2"


@pytest.fixture
def handler(tmp_path: Path):  # type: ignore[no-untyped-def]
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    yield Handler(spool=spool, registry=registry, rejects=RejectLog(spool)), spool, registry
    spool.close()
    registry.close()


def test_the_same_device_name_at_two_sites_is_two_devices(handler) -> None:  # type: ignore[no-untyped-def]
    h, spool, registry = handler
    ack_a = h.handle("sen/v1/a/dev-x/telemetry", _env(seqs=range(1, 4), sensors=(None,)), received_ms=TS)
    ack_b = h.handle("sen/v1/b/dev-x/telemetry", _env(seqs=range(1, 3), sensors=(None,)), received_ms=TS)
    assert h.stats.readings == 5 and h.stats.duplicates == 0
    assert spool.depth() == 5
    assert (ack_a.site, ack_a.seq) == ("a", 3) and (ack_b.site, ack_b.seq) == ("b", 2)
    assert {(d.site, d.device) for d in registry.snapshot()} == {("a", "dev-x"), ("b", "dev-x")}


def test_a_reflashed_board_starting_again_at_boot_1_is_not_a_duplicate(handler) -> None:  # type: ignore[no-untyped-def]
    h, spool, registry = handler
    topic = "sen/v1/lab/dev-x/telemetry"
    old = h.handle(topic, _env(fid=111, sensors=(None,), up_only=True), received_ms=TS)
    new = h.handle(topic, _env(fid=222, sensors=(None,), up_only=True), received_ms=TS + 60_000)
    assert h.stats.readings == 6 and h.stats.duplicates == 0 and spool.depth() == 6
    assert (old.fid, new.fid) == (111, 222) and new.seq == 3
    assert registry.known_anchor(BootKey("lab", "dev-x", 111, 1)) != registry.known_anchor(
        BootKey("lab", "dev-x", 222, 1))
    # The same message again is a duplicate of its own flash's boot only.
    h.handle(topic, _env(fid=222, sensors=(None,), up_only=True), received_ms=TS + 61_000)
    assert h.stats.duplicates == 3


def test_status_shows_the_last_reading_of_each_sensor(handler, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h, _, registry = handler
    h.handle("sen/v1/lab/dev-x/telemetry", _env(sensors=("sht31", "dht20")), received_ms=TS)
    registry.flush()
    rows = read_devices(tmp_path)
    assert list(rows[0].sensors) == ["dht20", "sht31"] and rows[0].sensors["sht31"] == TS + 3000
    table = format_table(rows, now_ms=TS + 5000)
    assert "  sensor dht20" in table and "  sensor sht31" in table


def test_a_failed_registry_write_is_rolled_back_and_the_next_one_works(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    try:
        with pytest.raises(RegistryError):
            registry.anchors({BootKey("lab", "d", 0, 1): 2**70})  # beyond SQLite's 64 bits
        assert registry.anchor(BootKey("lab", "d", 0, 1), candidate_ms=5) == 5
    finally:
        registry.close()


def test_a_registry_of_the_old_layout_is_upgraded_with_its_sites(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.executescript("""
        CREATE TABLE anchors (device TEXT NOT NULL, boot INTEGER NOT NULL, anchor_ms INTEGER NOT NULL,
            PRIMARY KEY (device, boot)) WITHOUT ROWID;
        CREATE TABLE devices (site TEXT NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL, until_ms INTEGER,
            last_seen_ms INTEGER NOT NULL, last_reading_ms INTEGER, boot INTEGER, readings INTEGER NOT NULL,
            duplicates INTEGER NOT NULL, PRIMARY KEY (site, device)) WITHOUT ROWID;
        CREATE TABLE boots (device TEXT NOT NULL, boot INTEGER NOT NULL, highest_seq INTEGER NOT NULL,
            acked_seq INTEGER NOT NULL DEFAULT 0, gaps TEXT NOT NULL, PRIMARY KEY (device, boot)) WITHOUT ROWID;
        INSERT INTO anchors VALUES ('dev-x', 4, 123456);
        INSERT INTO devices VALUES ('farm', 'dev-x', 'online', NULL, 1, 2, 4, 40, 0);
        INSERT INTO boots VALUES ('dev-x', 4, 40, 38, '');
    """)
    db.close()
    registry = Registry(tmp_path)
    try:
        key = BootKey("farm", "dev-x", 0, 4)
        assert registry.known_anchor(key) == 123456
        ack = registry.acks_for([key])[0]
        assert ack is not None and ack.seq == 40 and ack.anchor == 123456  # 1..40 spooled, no gap
    finally:
        registry.close()
    assert read_devices(tmp_path)[0].highest_seq == 40


def test_boots_long_gone_are_pruned_and_live_ones_kept(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    try:
        old, live = BootKey("lab", "sleeper", 7, 1), BootKey("lab", "sleeper", 7, 2)
        registry.anchor(old, candidate_ms=1)
        registry.anchor(live, candidate_ms=2)
        registry.note_many([(live, [1], 1, 0, 3, 3, None, None)])
        registry.flush()
        assert registry.prune(older_than_ms=TS * 10) == 1  # everything is older: only the held boot stays
        assert registry.known_anchor(old) is None and registry.known_anchor(live) == 2
    finally:
        registry.close()
