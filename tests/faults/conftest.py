"""Fixtures shared by the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.devstack import InfluxDB
from tests.faults.kit import FaultProxy


@pytest.fixture
def proxy(influxdb: InfluxDB) -> Iterator[FaultProxy]:
    """A fault-injecting HTTP proxy in front of the real InfluxDB 1.x."""
    p = FaultProxy(influxdb)
    yield p
    p.close()
