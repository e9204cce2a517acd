"""A board's application version and OTA state, from its retained status to `sen status`:
`ver` and `ota` checked at decode, kept in the registry (a version-2 file gains the columns in
place), shown in the table; a malformed one is refused with its reason, like any bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.ops.status import format_table, ota_text, read_devices
from gateway.service.decode import Reject
from gateway.service.status_msg import Status, decode_status
from gateway.service.handler import Handler
from gateway.service.registry import Registry
from gateway.service.rejects import RejectLog
from gateway.service.topics import Topic
from ingest.spool import Spool

TOPIC = Topic(site="farm", device="pond-1", kind="status")
NOW = 1_763_800_000_000


def _status(**doc: object) -> Status | Reject:
    return decode_status(TOPIC, json.dumps({"v": 1, "state": "online", **doc}).encode())


def test_ver_and_ota_are_decoded_and_unknown_ota_keys_dropped() -> None:
    got = _status(ver="1.5.0-rc1", ota={"id": "1a2b3c4d", "ver": "1.5.0", "st": "recv", "at": 4096,
                                        "of": 141603, "x": "dropped"})
    assert isinstance(got, Status) and got.ver == "1.5.0-rc1"
    assert got.ota is not None and json.loads(got.ota) == {"st": "recv", "id": "1a2b3c4d", "ver": "1.5.0",
                                                           "at": 4096, "of": 141603}
    plain = _status()
    assert isinstance(plain, Status) and plain.ver is None and plain.ota is None


@pytest.mark.parametrize("doc", [
    {"ver": 15}, {"ver": ""}, {"ver": "1.5.0<script>"}, {"ver": "x" * 33},
    {"ota": "recv"}, {"ota": {"st": "installing"}}, {"ota": {"st": "recv", "at": -1}},
    {"ota": {"st": "refused", "why": "Bad Signature!"}}, {"ota": {"st": "recv", "id": "not-hex!"}},
    {"ota": {"st": "recv", "of": 2**40}},
])
def test_a_malformed_ver_or_ota_refuses_the_status_with_a_reason(doc: dict[str, object]) -> None:
    got = _status(**doc)
    assert isinstance(got, Reject) and got.detail


def test_the_registry_keeps_them_and_status_shows_them(tmp_path: Path) -> None:
    spool, registry = Spool(tmp_path), Registry(tmp_path)
    try:
        h = Handler(spool=spool, registry=registry, rejects=RejectLog(spool))
        topic = "sen/v1/farm/pond-1/status"
        h.handle(topic, json.dumps({"state": "online", "ver": "1.4.0", "ota": {
            "id": "1a2b3c4d", "ver": "1.5.0", "st": "recv", "at": 40960, "of": 141603}}).encode(), received_ms=NOW)
        h.handle("sen/v1/farm/pond-2/status", json.dumps({"state": "online", "ver": "1.5.0", "ota": {
            "st": "refused", "why": "bad_signature", "ver": "1.6.0"}}).encode(), received_ms=NOW)
        h.handle("sen/v1/farm/pond-3/status", b'{"state":"online","ver":"<b>"}', received_ms=NOW)
        registry.flush()
    finally:
        spool.close()
        registry.close()
    rows = {r.device: r for r in read_devices(tmp_path)}
    assert rows["pond-1"].ver == "1.4.0" and rows["pond-1"].ota == {
        "st": "recv", "id": "1a2b3c4d", "ver": "1.5.0", "at": 40960, "of": 141603}
    assert "pond-3" not in rows  # refused: its state is not taken either
    table = format_table(list(rows.values()), now_ms=NOW + 3000)
    assert "1.4.0" in table and "ota 1.5.0" in table and "receiving 28% (40,960 of 141,603 B)" in table
    assert "refused (bad_signature)" in table
    # A later status without ota (a board that finished, then rebooted) keeps the last one known.
    registry = Registry(tmp_path)
    try:
        assert registry.note_status(site="farm", device="pond-1", state="online", until_ms=None,
                                    received_ms=NOW + 5000, ver="1.5.0") is False
        registry.flush()
    finally:
        registry.close()
    row = next(r for r in read_devices(tmp_path) if r.device == "pond-1")
    assert row.ver == "1.5.0" and row.ota is not None and row.ota["st"] == "recv"


def test_a_version_2_registry_gains_the_columns_in_place(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.executescript("""
        CREATE TABLE devices (site TEXT NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL, until_ms INTEGER,
            last_seen_ms INTEGER NOT NULL, last_reading_ms INTEGER, fid INTEGER, boot INTEGER,
            readings INTEGER NOT NULL, duplicates INTEGER NOT NULL, PRIMARY KEY (site, device)) WITHOUT ROWID;
        CREATE TABLE boots (site TEXT NOT NULL, device TEXT NOT NULL, fid INTEGER NOT NULL, boot INTEGER NOT NULL,
            highest_seq INTEGER NOT NULL, acked_seq INTEGER NOT NULL DEFAULT 0, gaps TEXT NOT NULL,
            seen_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (site, device, fid, boot)) WITHOUT ROWID;
        CREATE TABLE sensors (site TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL,
            last_reading_ms INTEGER NOT NULL, PRIMARY KEY (site, device, sensor)) WITHOUT ROWID;
        INSERT INTO devices VALUES ('farm', 'pond-1', 'online', NULL, 1, 2, 7, 4, 40, 0);
        INSERT INTO boots VALUES ('farm', 'pond-1', 7, 4, 40, 40, '', 1);
        PRAGMA user_version = 2;
    """)
    db.close()
    old = read_devices(tmp_path)  # `sen status` reads a file the gateway has not upgraded yet
    assert old[0].ver is None and old[0].ota is None
    registry = Registry(tmp_path)
    try:
        registry.note_status(site="farm", device="pond-1", state="online", until_ms=None, received_ms=3,
                             ver="1.4.0")
        registry.flush()
    finally:
        registry.close()
    row = read_devices(tmp_path)[0]
    assert (row.device, row.ver, row.boot, row.highest_seq) == ("pond-1", "1.4.0", 4, 40)


def test_ota_in_words() -> None:
    assert ota_text({"st": "trial", "ver": "1.5.0"}) == "on trial"
    assert ota_text({"st": "rolled_back", "why": "trial_failed"}) == "rolled back (trial_failed)"
    assert ota_text(None) == ""
