"""Retry-After: a server answering 429 or 503 with ``Retry-After: N`` is left alone for about
N seconds (never sooner, even when the backoff would be shorter), and nothing is lost.

The writer runs in-process on a real spool with the real sinks (``/write`` to InfluxDB 1.x,
``/api/v2/write`` to VictoriaMetrics), behind the fault proxy of :mod:`tests.faults.kit`.
"""

from __future__ import annotations

from itertools import pairwise

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.devstack import InfluxDB, VictoriaMetrics
from ingest.influx_v1 import InfluxV1
from ingest.influx_v2 import InfluxV2
from ingest.retry import Backoff
from ingest.spool import Entry, Spool
from ingest.writer import Sink, Writer
from tests.faults.kit import BASE_MS, FaultProxy
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.integration]

RETRY_AFTER_S = 1.0
LINES = 40


def _lines(device: str) -> list[Entry]:
    return [Entry(line=f"telemetry,site=lab,device={device} temp_c={s / 4},seq={s}i,boot=1i "
                       f"{BASE_MS + s * 1000}", key=f"r/{device}/1/{s}") for s in range(1, LINES + 1)]


def _through_faults(proxy: FaultProxy, sink: Sink, status: int, device: str,
                    tmp_path: Path) -> Writer:
    """Write LINES lines while the proxy answers ``status`` + Retry-After to the first writes."""
    proxy.fail_with, proxy.retry_after = status, f"{RETRY_AFTER_S:g}"
    spool = Spool(tmp_path)
    # A backoff far shorter than Retry-After: any wait of about a second is the header's doing.
    writer = Writer(spool, sink, batch_size=LINES, flush_interval_s=0.0,
                    backoff=Backoff(initial_s=0.02, max_s=0.05))
    try:
        writer.start()
        spool.commit(_lines(device))
        writer.notify()
        wait_for(lambda: proxy.counts[status] >= 2, timeout=20,
                 what=f"two writes answered {status}")
        proxy.fail_with = None
        assert writer.wait_idle(20)
    finally:
        writer.stop(flush_timeout_s=5)
        spool.close()
    writes = list(proxy.writes)
    assert writes[-1][3] // 100 == 2
    gaps = [later[0] - earlier[0] for earlier, later in pairwise(writes)
            if earlier[3] == status]
    assert len(gaps) >= 2
    # About Retry-After: not sooner (backoff alone would retry within 0.05 s), not much later.
    assert all(RETRY_AFTER_S * 0.9 <= gap <= RETRY_AFTER_S + 1.0 for gap in gaps), gaps
    assert writer.stats.failures == len(gaps) and writer.stats.written == LINES
    return writer


@pytest.fixture
def vm_proxy(victoriametrics: VictoriaMetrics) -> Iterator[FaultProxy]:
    p = FaultProxy(victoriametrics)
    yield p
    p.close()


@pytest.mark.parametrize("status", [429, 503])
def test_v1_write_honours_retry_after_and_loses_nothing(
        influxdb: InfluxDB, influx_db: str, proxy: FaultProxy, status: int,
        tmp_path: Path) -> None:
    device = f"ra-v1-{status}"
    _through_faults(proxy, InfluxV1(proxy.url, database=influx_db), status, device,
                    tmp_path)
    rows = influxdb.rows('SELECT "seq" FROM "telemetry"', influx_db)
    assert Counter(int(r["seq"]) for r in rows) == Counter(range(1, LINES + 1))


@pytest.mark.parametrize("status", [429, 503])
def test_v2_write_honours_retry_after_and_loses_nothing(
        victoriametrics: VictoriaMetrics, vm_proxy: FaultProxy, status: int,
        tmp_path: Path) -> None:
    device = f"ra-v2-{status}-{tmp_path.name}"[:32]
    sink = InfluxV2(vm_proxy.url, bucket="sen")
    try:
        _through_faults(vm_proxy, sink, status, device, tmp_path)
    finally:
        sink.close()

    def seqs() -> Counter[int]:
        got: Counter[int] = Counter()
        for series in victoriametrics.export(f'{{__name__="telemetry_seq",device="{device}"}}'):
            got.update(int(v) for v in series["values"])
        return got

    wait_for(lambda: sum(seqs().values()) >= LINES, timeout=10, what="the lines in VictoriaMetrics")
    assert seqs() == Counter(range(1, LINES + 1))  # refused writes stored nothing; none doubled
