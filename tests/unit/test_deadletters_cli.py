"""`sen deadletters list|replay|purge` on a spool in tmp_path (MQTT replay: tests/integration/test_dead_letters.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Writer

from gateway.cli import main
from tests.unit.test_writer import FakeSink

TOPIC = "sen/v1/lab/dev-1/telemetry"


def _spool_with_letters(directory: Path) -> None:
    """#1 an MQTT message, #2 an oversize one (a sample), #3 a serial one, #4 a refused line."""
    spool = Spool(directory)
    spool.add_dead_letter(source=f"mqtt:{TOPIC}", reason="not_json", detail="Expecting value", raw=b"oops\x00\n\xff")
    spool.add_dead_letter(source=f"mqtt:{TOPIC}", reason="oversize", detail="too big", raw=b"{" * 5000)
    spool.add_dead_letter(source=f"serial:/dev/ttyUSB0:{TOPIC}", reason="bad_type", detail="v", raw=b'{"v":"1"}')
    spool.commit([Entry(line="telemetry,device=dev-1 x=1.5 1000")])
    batch = spool.oldest(10)
    assert batch is not None
    spool.set_aside(batch.ids, reason="influx_http_400", detail="partial write: field type conflict")
    spool.close()


def _ids(directory: Path) -> list[int]:
    db = sqlite3.connect(directory / "spool.sqlite3")
    try:
        return [int(r[0]) for r in db.execute("SELECT id FROM dead_letters ORDER BY id")]
    finally:
        db.close()


def test_list_prints_each_dead_letter_with_a_printable_preview(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    assert main(["deadletters", "list", "--spool", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("#1  ") and out[0].endswith(f"  mqtt:{TOPIC}  not_json  7 B")
    assert out[1:3] == ["     detail: Expecting value", "     kept:   oops\\x00\\n\\xff"]
    assert out[3].endswith("oversize  5000 B (first 1024 B kept)")
    assert out[5] == "     kept:   " + "{" * 72 + "..."
    assert out[9].endswith("  influx  influx_http_400  33 B")
    assert out[-1] == (f"4 dead letter(s) shown, 4 held in {tmp_path}; 0 dropped so far by the bound "
                       "(10000 rows, 30 days, oldest first)")
    assert main(["deadletters", "list", "--spool", str(tmp_path), "--reason", "bad_type", "--limit", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("#3  ") and out[-1].startswith("1 dead letter(s) of reason bad_type shown, 4 held")


def test_list_reads_the_sample_configurations_spool_dir_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["deadletters", "list"]) == 2
    assert capsys.readouterr().err == ("sen deadletters: error: no spool at .sen/gateway/spool.sqlite3: "
                                       "is .sen/gateway the gateway's spool dir?\n")
    _spool_with_letters(tmp_path / ".sen" / "gateway")
    assert main(["deadletters", "list"]) == 0
    assert "4 held in .sen/gateway" in capsys.readouterr().out


def test_replayed_lines_are_written_by_the_running_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    gateway_spool = Spool(tmp_path)  # the gateway's own connection, its writer running
    sink = FakeSink()
    writer = Writer(gateway_spool, sink, batch_size=10, flush_interval_s=0.05,
                    backoff=Backoff(initial_s=0.01, max_s=0.05))
    writer.start()
    try:
        assert main(["deadletters", "replay", "--spool", str(tmp_path), "--id", "4"]) == 0
        assert capsys.readouterr().out == ("requeued 1 refused line(s) (ids 4) into the spool: the gateway writes "
                                           "them within its flush interval, or at its next start\n")
        deadline = time.monotonic() + 10
        while not sink.lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.lines == ["telemetry,device=dev-1 x=1.5 1000"]
        assert writer.wait_idle(5) and gateway_spool.pending == 0  # its own count is right again
        assert writer.stats.written == 1
    finally:
        writer.stop()
        gateway_spool.close()
    assert _ids(tmp_path) == [1, 2, 3]


def test_replay_says_what_cannot_be_replayed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    assert main(["deadletters", "replay", "--spool", str(tmp_path), "--all"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "requeued 1 refused line(s) (ids 4) into the spool: the gateway writes them within its flush "
        "interval, or at its next start",
        "left 1 MQTT message(s) (ids 1): give --mqtt URL to republish them to their topics",
        "left 1 serial message(s) (ids 3): a message from a serial board cannot be replayed (there is no way "
        "to hand it back to the board); purge it when done",
        "left 1 message(s) kept as a sample (ids 2): over 4096 B, only their first 1024 B were kept, so they "
        "cannot be replayed",
    ]
    assert _ids(tmp_path) == [1, 2, 3]
    spool = Spool(tmp_path)
    assert spool.depth() == 1
    spool.close()
    assert main(["deadletters", "replay", "--spool", str(tmp_path), "--reason", "nothing_like_it"]) == 0
    assert capsys.readouterr().out == "no dead letters match: nothing replayed\n"


def test_replay_to_a_broker_that_is_not_there_is_one_clear_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    assert main(["deadletters", "replay", "--spool", str(tmp_path), "--id", "1", "--mqtt", "mqtt://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sen deadletters: error: cannot reach the broker at mqtt://127.0.0.1:1")
    assert err.count("\n") == 1
    assert main(["deadletters", "replay", "--spool", str(tmp_path), "--id", "1", "--mqtt", "http://x"]) == 2
    assert "--mqtt" in capsys.readouterr().err
    assert _ids(tmp_path) == [1, 2, 3, 4]


def test_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    spool_dir = str(tmp_path)
    assert main(["deadletters", "purge", "--spool", spool_dir, "--id", "2", "9"]) == 2
    assert capsys.readouterr().err == (f"sen deadletters: error: no dead letter with id 9 in {tmp_path}/spool.sqlite3; "
                                       "nothing done\n")
    assert _ids(tmp_path) == [1, 2, 3, 4]
    assert main(["deadletters", "purge", "--spool", spool_dir, "--id", "2", "--id", "3"]) == 0
    assert capsys.readouterr().out == f"purged 2 dead letter(s) (ids 2-3) from {tmp_path}\n"
    assert main(["deadletters", "purge", "--spool", spool_dir, "--reason", "not_json"]) == 0
    assert capsys.readouterr().out == f"purged 1 dead letter(s) (ids 1) from {tmp_path}\n"
    assert main(["deadletters", "purge", "--spool", spool_dir, "--older-than", "1"]) == 0
    assert capsys.readouterr().out == f"purged 0 dead letter(s) from {tmp_path}\n"
    assert main(["deadletters", "purge", "--spool", spool_dir, "--all"]) == 0
    assert capsys.readouterr().out == f"purged 1 dead letter(s) (ids 4) from {tmp_path}\n"
    assert _ids(tmp_path) == []


def test_purge_older_than(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    db = sqlite3.connect(tmp_path / "spool.sqlite3")
    db.execute("UPDATE dead_letters SET added_ms = added_ms - 3 * 86400000 WHERE id < 3")
    db.commit()
    db.close()
    assert main(["deadletters", "purge", "--spool", str(tmp_path), "--older-than", "2.5"]) == 0
    assert capsys.readouterr().out == f"purged 2 dead letter(s) (ids 1-2) from {tmp_path}\n"
    assert _ids(tmp_path) == [3, 4]


def test_replay_and_purge_need_to_be_told_which(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("replay", "purge"):
        with pytest.raises(SystemExit):
            main(["deadletters", command, "--spool", "x"])
        assert "one of the arguments --id" in capsys.readouterr().err


def test_list_points_at_the_dead_letters_of_each_worker_spool(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_letters(tmp_path)
    _spool_with_letters(tmp_path / "workers" / "1")  # a --workers 2 run's second worker
    Spool(tmp_path / "workers" / "0").close()  # one with none: not named
    assert main(["deadletters", "list", "--spool", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith(f"4 dead letter(s) shown, 4 held in {tmp_path};")
    assert out[-1] == (f"worker 1's spool (sen gateway run --workers N) holds 4 more: "
                       f"sen deadletters list --spool {tmp_path / 'workers' / '1'}")
