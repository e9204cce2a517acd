"""The ``/api/v2/write`` writer and the API detection against real servers.

VictoriaMetrics (Debian's ``victoria-metrics``) implements ``/api/v2/write`` and keeps every
sample it is sent — a point written twice shows up twice in ``/api/v1/export`` — so it checks
"every point exactly once" more strictly than InfluxDB (which overwrites). It stores
``telemetry`` + field ``temp_c`` as the metric ``telemetry_temp_c``, tags as labels.
"""

from __future__ import annotations

import http.server
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.devstack import InfluxDB, Mosquitto, VictoriaMetrics
from ingest.detect import AutoSink, detect_api
from ingest.errors import InfluxUnavailable
from ingest.influx_v1 import InfluxV1
from ingest.influx_v2 import InfluxV2
from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Sink, Writer
from tests.faults.kit import BASE_MS, FaultProxy, GatewayProcess, Publisher
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

_run_counter = iter(range(1, 10_000))


def _device(tag: str) -> str:
    """A device name no other test of this session uses (VictoriaMetrics is shared)."""
    return f"{tag}-{next(_run_counter)}"


def samples(vm: VictoriaMetrics, metric: str, device: str) -> Counter[tuple[int, float]]:
    """(timestamp, value) -> how many times VictoriaMetrics holds it, for one device."""
    out: Counter[tuple[int, float]] = Counter()
    for series in vm.export(f'{{__name__="{metric}",device="{device}"}}'):
        out.update(zip(series["timestamps"], series["values"], strict=True))
    return out


@pytest.fixture
def vm_proxy(victoriametrics: VictoriaMetrics) -> Iterator[FaultProxy]:
    p = FaultProxy(victoriametrics)
    yield p
    p.close()


def test_detection_picks_v2_for_victoriametrics_and_v1_for_influxdb_1x(
        victoriametrics: VictoriaMetrics, influxdb: InfluxDB) -> None:
    # VictoriaMetrics: /ping 204 without X-Influxdb-Version, /health 200 -> v2.
    assert detect_api(victoriametrics.url) == "v2"
    # InfluxDB 1.6: /ping carries X-Influxdb-Version 1.6.x -> v1.
    assert detect_api(influxdb.url) == "v1"


class _Unwell(http.server.BaseHTTPRequestHandler):
    """A server with no version header whose /health says 503 (a 2.x still starting, or a
    proxy in front of a dead server): no guess may be made from that."""

    def do_GET(self) -> None:
        self.send_response(204 if self.path == "/ping" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_detection_does_not_guess_from_an_unhealthy_answer() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unwell)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(InfluxUnavailable):
            detect_api(url, timeout_s=2)
        made: list[str] = []

        def make(api: str) -> Sink:
            made.append(api)
            return InfluxV1(url, database="x")

        sink = AutoSink(url, make, timeout_s=2)
        with pytest.raises(InfluxUnavailable):
            sink.write(b"m f=1 1\n")
        assert made == []  # nothing chosen (and cached) while the server is unwell
    finally:
        server.shutdown()
        server.server_close()


def test_writer_sends_gzip_batches_through_api_v2_and_every_point_lands_once(
        victoriametrics: VictoriaMetrics, vm_proxy: FaultProxy, tmp_path: Path) -> None:
    device = _device("v2w")
    n = 57  # batches of 10: five full ones and a partial one
    spool = Spool(tmp_path)
    sink = InfluxV2(vm_proxy.url, bucket="sen", compress=True)
    writer = Writer(spool, sink, batch_size=10, flush_interval_s=0.05,
                    backoff=Backoff(initial_s=0.05, max_s=0.2))
    try:
        writer.start()
        spool.commit([Entry(line=f"telemetry,site=lab,device={device} temp_c={20 + s / 8},"
                                 f"rh_pct={s}i,seq={s}i,boot=3i {BASE_MS + s * 1000}",
                            key=f"r/{device}/3/{s}") for s in range(1, n + 1)])
        writer.notify()
        assert writer.wait_idle(30)
    finally:
        writer.stop(flush_timeout_s=5)
        sink.close()
        spool.close()
    writes = [w for w in vm_proxy.writes if w[1].startswith("/api/v2/write")]
    assert len(writes) == 6 and all(enc == "gzip" and status == 204 for _, _, enc, status in writes)
    assert writer.stats.written == n and writer.stats.failures == 0
    want_ts = {BASE_MS + s * 1000 for s in range(1, n + 1)}
    wait_for(lambda: sum(samples(victoriametrics, "telemetry_seq", device).values()) >= n,
             timeout=10, what=f"{n} points in VictoriaMetrics")
    seq = samples(victoriametrics, "telemetry_seq", device)
    assert seq == Counter({(BASE_MS + s * 1000, s): 1 for s in range(1, n + 1)})
    temp = samples(victoriametrics, "telemetry_temp_c", device)
    assert {ts for ts, _ in temp} == want_ts and all(c == 1 for c in temp.values())
    assert all(v == pytest.approx(20 + (ts - BASE_MS) / 1000 / 8) for ts, v in temp)
    rh = samples(victoriametrics, "telemetry_rh_pct", device)
    assert sorted(v for _, v in rh) == list(range(1, n + 1))
    boots = samples(victoriametrics, "telemetry_boot", device)
    assert set(v for _, v in boots) == {3} and sum(boots.values()) == n
    labels = victoriametrics.export(f'{{__name__="telemetry_seq",device="{device}"}}')[0]["metric"]
    assert labels == {"__name__": "telemetry_seq", "device": device, "site": "lab"}


@pytest.mark.slow
def test_gateway_process_with_auto_api_writes_to_victoriametrics_exactly_once(
        mosquitto: Mosquitto, victoriametrics: VictoriaMetrics, tmp_path: Path) -> None:
    devices = (_device("v2g"), _device("v2g"))
    seqs = range(1, 31)
    gw = GatewayProcess(tmp_path, "gw", mosquitto, victoriametrics.url, devices[0],
                        "--influx-api", "auto")
    publisher = Publisher(mosquitto, f"boards-{devices[0]}")
    gw.start()
    try:
        publisher.readings(devices, seqs)
        publisher.wait_sent()

        def landed() -> bool:
            return all(sum(samples(victoriametrics, "telemetry_seq", d).values()) >= len(seqs)
                       for d in devices)

        wait_for(landed, timeout=30, what="every reading in VictoriaMetrics")
    finally:
        gw.stop()
        publisher.close()
    log = gw.log.read_text(errors="replace")
    assert "-> v2 write API" in log, log[-3000:]
    for device in devices:
        got = samples(victoriametrics, "telemetry_seq", device)
        assert got == Counter({(BASE_MS + s * 1000, s): 1 for s in seqs}), device
        temps = samples(victoriametrics, "telemetry_temp_c", device)
        assert sorted(temps) == sorted((BASE_MS + s * 1000, s / 10) for s in seqs)
    assert gw.depth_and_dead() == (0, 0)
    assert gw.spooled_keys() == len(devices) * len(seqs)
    # The gateway's own counters went the same way (metric gateway_<counter>).
    # A sample stamped "now" takes VictoriaMetrics a moment to index: poll for it.
    own = wait_for(lambda: victoriametrics.export(
        f'{{__name__="gateway_readings",gateway="gw-{devices[0]}"}}'), timeout=10,
        what="the gateway measurement in VictoriaMetrics")
    assert max(own[0]["values"]) == len(devices) * len(seqs)
