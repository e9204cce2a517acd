"""Dead letters are bounded: a sample of an oversize message, at most N rows and M days (the
oldest dropped first, counted and logged), and the rejects log's per-device memory is bounded."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from ingest import deadletters as dl
from ingest.spool import Entry, Spool

from gateway.service.decode import Reason, Reject
from gateway.service import rejects
from gateway.service.rejects import MAX_DEVICES, NAME_MAX, OTHERS, RejectLog

TOPIC = "mqtt:sen/v1/lab/dev-1/telemetry"
MIB = 1024 * 1024


def test_an_oversize_message_is_kept_as_a_sample_and_the_spool_stays_small(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.add_dead_letter(source=TOPIC, reason="oversize", detail="message of 2097152 bytes",
                              raw=bytes([65 + i]) * (2 * MIB))
    spool.add_dead_letter(source=TOPIC, reason="not_json", detail="x", raw=b"{" * 4096)  # the contract's max
    letters = spool.dead_letters()
    spool.close()
    assert [(len(d.raw), d.size, d.whole) for d in letters] == [(1024, 2 * MIB, False)] * 5 + [(4096, 4096, True)]
    assert letters[0].raw == b"A" * 1024
    assert letters[0].detail == "message of 2097152 bytes (only the first 1024 of 2097152 bytes kept)"
    files = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert files < 200_000, f"{files} bytes of spool for 5 oversize messages"


def test_a_long_detail_is_cut(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add_dead_letter(source=TOPIC, reason="bad_type", detail="d" * 100_000, raw=b"{}")
    assert len(spool.dead_letters()[0].detail) == dl.DETAIL_MAX_CHARS
    spool.close()


def test_the_table_keeps_at_most_n_rows_oldest_dropped_first_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.deadletters")
    spool = Spool(tmp_path, dead_letter_rows=5)
    for i in range(8):
        spool.add_dead_letter(source=TOPIC, reason="not_json", detail=str(i), raw=b"m%d" % i)
    assert [d.detail for d in spool.dead_letters()] == ["3", "4", "5", "6", "7"]
    assert spool.dead_letters_dropped == 3
    # Refused lines count against the same bound.
    spool.commit([Entry(line="m x=1.0 1"), Entry(line="m x=2.0 2")])
    batch = spool.oldest(10)
    assert batch is not None
    spool.set_aside(batch.ids, reason="influx_http_400", detail="bad")
    assert [d.detail for d in spool.dead_letters()] == ["5", "6", "7", "bad", "bad"]
    assert spool.dead_letters_dropped == 5 and spool.depth() == 0
    spool.close()
    # Logged when dropping starts, not once per drop.
    drops = [r.getMessage() for r in caplog.records if "over their bound" in r.getMessage()]
    assert drops == ["dead letters over their bound (5 rows, 30 days): dropped the 1 oldest (1 dropped in all)"]
    again = Spool(tmp_path, dead_letter_rows=5)  # the count is durable
    assert again.dead_letters_dropped == 5
    again.close()


def test_dead_letters_older_than_m_days_expire(tmp_path: Path) -> None:
    spool = Spool(tmp_path, dead_letter_days=30)
    for i in range(3):
        spool.add_dead_letter(source=TOPIC, reason="not_json", detail=str(i), raw=b"x")
    db = sqlite3.connect(spool.path)
    old = time.time_ns() // 1_000_000 - 31 * 86_400_000
    db.execute("UPDATE dead_letters SET added_ms = ? WHERE detail IN ('0', '1')", (old,))
    db.commit()
    db.close()
    assert spool.trim_dead_letters() == 2  # what the writer does every 10 minutes
    assert [d.detail for d in spool.dead_letters()] == ["2"] and spool.dead_letters_dropped == 2
    spool.close()


def test_bad_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, dead_letter_rows=0)


def test_an_older_spools_dead_letters_read_as_whole(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "spool.sqlite3")
    db.executescript("""
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, added_ms INTEGER NOT NULL,
            source TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, raw BLOB NOT NULL);
        INSERT INTO dead_letters (added_ms, source, reason, detail, raw)
            VALUES (strftime('%s', 'now') * 1000, 'influx', 'influx_http_400', 'x', CAST('m x=1.0 1' AS BLOB));
    """)
    db.commit()
    db.close()
    spool = Spool(tmp_path)
    letters = spool.dead_letters()
    assert [(d.raw, d.size, d.whole) for d in letters] == [(b"m x=1.0 1", 9, True)]
    spool.close()


def _reject(log: RejectLog, device: str) -> None:
    log.record(source=f"mqtt:sen/v1/lab/{device}/telemetry", device=device,
               reject=Reject(reason=Reason.NOT_JSON, detail="x"), raw=b"x")


def test_the_rejects_log_forgets_devices_after_the_window(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.service.rejects")
    now = [1000.0]
    monkeypatch.setattr(rejects.time, "monotonic", lambda: now[0])
    spool = Spool(tmp_path)
    log = RejectLog(spool, log_every_s=60)
    for _ in range(3):
        _reject(log, "dev-1")
    for i in range(50):
        _reject(log, f"dev-{i + 2}")
    assert log.tracked == 51
    now[0] += 61
    _reject(log, "dev-60")
    assert log.tracked == 1 and log.total == 54  # the counts by reason stay
    messages = [r.getMessage() for r in caplog.records]
    assert "2 more rejected message(s) from dev-1 since its last report" in messages
    spool.close()


def test_the_rejects_log_holds_at_most_max_devices(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.service.rejects")
    spool = Spool(tmp_path)
    log = RejectLog(spool, max_devices=10)
    for i in range(100):
        _reject(log, f"{i}-{'x' * 500}")  # a flood of long names (a bad topic is its own "device")
    assert log.tracked == 11 and log.total == 100
    logged = [r for r in caplog.records if r.getMessage().startswith("rejected message")]
    assert len(logged) == 11  # ten devices, then one line for all the others
    assert all(len(r.args[0]) <= NAME_MAX for r in logged)  # type: ignore[index,arg-type]
    assert OTHERS in log._last_logged and MAX_DEVICES >= 1000
    spool.close()
