"""The message handler: stamping, spooling, duplicates, rejects (real SQLite, no broker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service.handler import Handler
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from ingest.spool import Spool

CONTRACT = Path(__file__).resolve().parents[1] / "contract"


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Handler, Spool]]:
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    yield Handler(spool=spool, registry=registry, rejects=RejectLog(spool)), spool
    spool.close()
    registry.close()


def _pending(spool: Spool) -> list[str]:
    batch = spool.oldest(1000)
    return list(batch.lines) if batch else []


def test_readings_with_ts_become_lines(parts: tuple[Handler, Spool]) -> None:
    handler, spool = parts
    payload = (CONTRACT / "valid" / "basic_ts.json").read_bytes()
    handler.handle("sen/v1/home/esp32-a1b2c3d4e5f6/telemetry", payload, received_ms=1)
    assert _pending(spool) == [
        "telemetry,board=esp32-devkitc,device=esp32-a1b2c3d4e5f6,site=home "
        "boot=17i,rh_pct=55.2,seq=1042i,temp_c=21.53 1763800000123",
        "telemetry,board=esp32-devkitc,device=esp32-a1b2c3d4e5f6,site=home "
        "boot=17i,seq=1043i,temp_c=21.5 1763800001123",
        # envelope up 923400 anchored at receive time 1
        "device_diag,device=esp32-a1b2c3d4e5f6,site=home dropped=0.0,heap_free=41232.0,"
        'outbox=2.0,reset="power",rssi_dbm=-61.0 1',
    ]
    handler.handle("sen/v1/home/esp32-a1b2c3d4e5f6/telemetry", payload, received_ms=99)
    assert spool.depth() == 3 and handler.stats.duplicates == 3


def test_uptime_readings_get_a_stable_anchor_across_restarts(tmp_path: Path) -> None:
    payload = (CONTRACT / "valid" / "uptime_only.json").read_bytes()
    topic = "sen/v1/lab/yolo-uno-01/telemetry"
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    Handler(spool=spool, registry=registry, rejects=RejectLog(spool)).handle(
        topic, payload, received_ms=1_000_000)
    # anchor = 1_000_000 - 60_000; readings at up 58_000 and 59_000
    assert [line.rsplit(" ", 1)[1] for line in _pending(spool)] == ["998000", "999000"]
    spool.close()
    registry.close()
    spool, registry = Spool(tmp_path / "other"), Registry(tmp_path)
    doc = json.loads(payload)
    doc["r"] = [{"seq": 3, "up": 70_000, "m": {"temp_c": 1.0}}]
    doc["up"] = 71_000
    Handler(spool=spool, registry=registry, rejects=RejectLog(spool)).handle(
        topic, json.dumps(doc).encode(), received_ms=5_000_000)
    assert [line.rsplit(" ", 1)[1] for line in _pending(spool)] == ["1010000"]
    spool.close()
    registry.close()



def test_the_registry_is_told_the_times_the_lines_carry(tmp_path: Path) -> None:
    """The newest reading's time and each sensor's, as the spooled lines have them (an uptime-only
    reading placed by its boot's anchor); a message that was all duplicates tells no time."""
    from gateway.ops.status import read_devices

    topic = "sen/v1/lab/yolo-uno-01/telemetry"
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    handler = Handler(spool=spool, registry=registry, rejects=RejectLog(spool))
    doc = json.loads((CONTRACT / "valid" / "uptime_only.json").read_bytes())
    doc["up"] = 60_000
    doc["r"] = [{"seq": 1, "up": 50_000, "s": "sht31", "m": {"temp_c": 1.0}},
                {"seq": 2, "up": 58_000, "s": "dht20", "m": {"temp_c": 2.0}},
                {"seq": 3, "up": 55_000, "s": "sht31", "m": {"temp_c": 3.0}}]
    handler.handle(topic, json.dumps(doc).encode(), received_ms=1_000_000)  # anchor 940_000
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in _pending(spool)) == [990_000, 995_000, 998_000]
    handler.handle(topic, json.dumps(doc).encode(), received_ms=2_000_000)  # all three again
    registry.flush()
    (row,) = read_devices(tmp_path)
    assert row.last_reading_ms == 998_000 and row.sensors == {"dht20": 998_000, "sht31": 995_000}
    assert handler.stats.duplicates == 3
    spool.close()
    registry.close()

def test_rejects_are_counted_kept_and_logged_once_per_minute(
    parts: tuple[Handler, Spool], caplog: pytest.LogCaptureFixture,
) -> None:
    handler, spool = parts
    for _ in range(3):
        handler.handle("sen/v1/home/sim-0001/telemetry", b"garbage", received_ms=1)
    handler.handle("sen/v1/Bad Site/sim-0001/telemetry", b"{}", received_ms=1)
    handler.handle("sen/v1/home/sim-0002/telemetry", b'{"v": 2}', received_ms=1)
    handler.handle("sen/v1/home/sim-0002/status", b'{"state": "online"}', received_ms=1)
    assert handler.stats.rejected == 5
    reasons = [d.reason for d in spool.dead_letters()]
    assert reasons == ["not_json"] * 3 + ["bad_name", "schema_version"]
    assert spool.dead_letters()[0].raw == b"garbage"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # sim-0001 once, the bad topic, sim-0002
    assert spool.depth() == 0
