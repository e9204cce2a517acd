"""Dead letters against real servers (InfluxDB 1.6, Mosquitto): a field type conflict sets
aside only that field; the operator fixes it and replays it with `sen deadletters replay`
(another process, the gateway running); a rejected MQTT message is republished and decoded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.devstack import InfluxDB, Mosquitto
from gateway.service.options import GatewayOptions
from ingest.influx_v1 import InfluxV1
from ingest.ranges import Run
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import Writer
from tests.integration.helpers import wait_for
from tests.integration.test_gateway import BASE_MS, Gateway, Publisher

pytestmark = pytest.mark.integration

HEAD = "telemetry,board=test-board,device={device},site=lab"


def _sen(*args: str) -> subprocess.CompletedProcess[str]:
    """`sen ARGS` as its own process (the gateway's spool is open in this one)."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def _stray_integer_x(influxdb: InfluxDB, db: str) -> None:
    """Another writer made ``x`` an integer field of ``telemetry`` before our readings came."""
    sink = InfluxV1(influxdb.url, database=db)
    sink.write((HEAD.format(device="stray") + f" x=1i,seq=1i,boot=1i {BASE_MS}\n").encode())
    sink.close()


def _points(influxdb: InfluxDB, db: str, device: str) -> dict[int, dict[str, Any]]:
    rows = influxdb.rows(f"SELECT * FROM \"telemetry\" WHERE \"device\" = '{device}'", db)
    return {int(r["time"]): r for r in rows}


def test_a_field_type_conflict_sets_aside_only_that_field(influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    _stray_integer_x(influxdb, influx_db)
    head = HEAD.format(device="dev-a")
    lines = [f"{head} boot=1i,seq={s}i,temp_c={20 + s / 10}{',x=' + str(s + 0.5) if s in (2, 4) else ''} "
             f"{BASE_MS + s * 1000}" for s in range(1, 6)]
    spool = Spool(tmp_path)
    # Two messages (rows): one InfluxDB batch that it writes in part and refuses (400, partial write).
    spool.commit([Run(stream="r/dev-a/1", seqs=(1, 2, 3), lines=tuple(lines[:3]))])
    spool.commit([Run(stream="r/dev-a/1", seqs=(4, 5), lines=tuple(lines[3:]))])
    writer = Writer(spool, InfluxV1(influxdb.url, database=influx_db), batch_size=100, flush_interval_s=0.0,
                    backoff=Backoff(initial_s=0.05, max_s=0.2))
    try:
        writer.start()
        assert writer.wait_idle(30)
    finally:
        writer.stop()
    letters = spool.dead_letters()
    spool.close()
    points = _points(influxdb, influx_db, "dev-a")
    assert sorted(points) == [BASE_MS + s * 1000 for s in range(1, 6)]
    for s in range(1, 6):  # every reading landed with seq, boot and temp_c; x nowhere
        p = points[BASE_MS + s * 1000]
        assert (p["seq"], p["boot"], p["temp_c"], p["x"]) == (s, 1, pytest.approx(20 + s / 10), None)
    assert [(d.source, d.reason, d.raw.decode()) for d in letters] == [
        ("influx", "influx_http_400", f"{head} x=2.5 {BASE_MS + 2000}"),
        ("influx", "influx_http_400", f"{head} x=4.5 {BASE_MS + 4000}")]
    assert 'input field \\"x\\" on measurement \\"telemetry\\" is type float' in letters[0].detail
    # Counted once each, though InfluxDB took some lines more than once (partial writes).
    assert (writer.stats.written, writer.stats.set_aside, writer.stats.fields_set_aside) == (5, 0, 2)


@pytest.fixture
def options(mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> GatewayOptions:
    return GatewayOptions(mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                          spool_dir=tmp_path / "spool", client_id=f"gw-dl-{influx_db}",
                          batch_size=25, flush_interval_s=0.2, reconnect_max_s=2, stats_interval_s=0.5)


@pytest.fixture
def publisher(mosquitto: Mosquitto, influx_db: str) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, f"pub-dl-{influx_db}")
    yield pub
    pub.close()


def _message(device: str, seq: int, metrics: dict[str, float]) -> bytes:
    return json.dumps({"v": 1, "dev": device, "boot": 7, "board": "test-board",
                       "r": [{"seq": seq, "ts": BASE_MS + seq * 1000, "m": metrics}]}).encode()


def _gateway_counters(influxdb: InfluxDB, db: str) -> dict[str, Any]:
    rows = influxdb.rows('SELECT last("fields_set_aside") AS f, last("set_aside") AS s, '
                         'last("dead_letters_dropped") AS d FROM "gateway"', db)
    return rows[0] if rows else {}


def test_a_refused_field_is_replayed_after_the_operator_fixed_it(
        options: GatewayOptions, influxdb: InfluxDB, influx_db: str, publisher: Publisher,
        caplog: pytest.LogCaptureFixture) -> None:
    _stray_integer_x(influxdb, influx_db)
    when = BASE_MS + 3000
    gateway = Gateway(options, caplog)
    try:
        publisher.send("sen/v1/lab/dev-b/telemetry", _message("dev-b", 3, {"temp_c": 21.5, "x": 2.5}))
        point = wait_for(lambda: _points(influxdb, influx_db, "dev-b").get(when), timeout=30,
                         what="the reading without x")
        assert (point["seq"], point["boot"], point["temp_c"], point["x"]) == (3, 7, 21.5, None)
        listed = _sen("deadletters", "list", "--spool", str(options.spool_dir))
        assert listed.returncode == 0, listed.stderr
        assert "  influx  influx_http_400  " in listed.stdout
        assert f"kept:   {HEAD.format(device='dev-b')} x=2.5 {when}" in listed.stdout
        assert "1 dead letter(s) shown, 1 held" in listed.stdout
        wait_for(lambda: _gateway_counters(influxdb, influx_db).get("f") == 1, timeout=10,
                 what="the gateway's fields_set_aside counter")
        assert _gateway_counters(influxdb, influx_db)["s"] == 0
        # The operator settles the type (the stray integers go), then replays while the gateway runs.
        influxdb.query('DROP MEASUREMENT "telemetry"', influx_db)
        replayed = _sen("deadletters", "replay", "--spool", str(options.spool_dir), "--reason", "influx_http_400")
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.startswith("requeued 1 refused line(s) (ids 1) into the spool")
        point = wait_for(lambda: _points(influxdb, influx_db, "dev-b").get(when), timeout=30,
                         what="the replayed field in InfluxDB")
        assert point["x"] == 2.5 and point["site"] == "lab" and point["board"] == "test-board"
    finally:
        gateway.stop()
    spool = Spool(options.spool_dir)
    try:
        assert spool.dead_letters() == [] and spool.depth() == 0
    finally:
        spool.close()


def test_a_rejected_mqtt_message_is_republished_and_decoded(
        options: GatewayOptions, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # As an older gateway would have left it: a message it could not decode, kept whole.
    spool = Spool(options.spool_dir)
    spool.add_dead_letter(source="mqtt:sen/v1/lab/dev-c/telemetry", reason="schema_version",
                          detail="unknown field", raw=_message("dev-c", 9, {"temp_c": 19.5}))
    spool.add_dead_letter(source="serial:/dev/ttyUSB0:sen/v1/lab/dev-d/telemetry", reason="bad_type",
                          detail="x", raw=b"{}")
    spool.close()
    gateway = Gateway(options, caplog)
    try:
        done = _sen("deadletters", "replay", "--spool", str(options.spool_dir), "--all", "--mqtt", mosquitto.url)
        assert done.returncode == 1, done.stderr  # the serial one stays
        assert done.stdout.splitlines()[0].startswith(f"republished 1 message(s) (ids 1) to {mosquitto.url} with QoS1")
        assert done.stdout.splitlines()[1].startswith("left 1 serial message(s) (ids 2): a message from a serial "
                                                      "board cannot be replayed")
        point = wait_for(lambda: _points(influxdb, influx_db, "dev-c").get(BASE_MS + 9000), timeout=30,
                         what="the republished reading in InfluxDB")
        assert (point["seq"], point["temp_c"]) == (9, 19.5)
    finally:
        gateway.stop()
    spool = Spool(options.spool_dir)
    try:
        assert [d.id for d in spool.dead_letters()] == [2]
    finally:
        spool.close()
