"""Shared fixtures: private Mosquitto and InfluxDB instances, and the MicroPython tools.

The servers are real (Debian's packages), on free loopback ports, with their data under
pytest's temporary directory; their logs are printed when a test using them fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.devstack import DevStackError, InfluxDB, Mosquitto, VictoriaMetrics

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every `sen gateway run` a test starts is one process unless the test asks for workers: the
# default (`auto`) would run worker processes on a machine of 4 cores or more.
os.environ.setdefault("SEN_SERVICE_WORKERS", "1")
_VENV_BIN = Path(sys.executable).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/hil/conftest.py: options must be known before collection starts.
    group = parser.getgroup("sen-hil", "Sen hardware-in-the-loop (tests/hil)")
    group.addoption("--board-port", metavar="PORT", help="serial port of a real board running Sen (transport serial)")
    group.addoption("--sim-board", action="store_true", help="run the HIL suite against a simulated board")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(_VENV_BIN))
    if found is None:
        pytest.fail(f"{name} not found: run ./run.sh setup to install the dev dependencies")
    return found


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def micropython_bin() -> str:
    return _tool("micropython")


@pytest.fixture(scope="session")
def mpy_cross_bin() -> str:
    return _tool("mpy-cross")


def _serve(service: Mosquitto | InfluxDB | VictoriaMetrics) -> None:
    try:
        service.start()
    except DevStackError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    _serve(broker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    _serve(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A private VictoriaMetrics: a real server speaking InfluxDB's ``/api/v2/write``."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoriametrics"))
    _serve(server)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _servers_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that stopped a shared server gets it started again for the next test."""
    yield
    for name in ("mosquitto", "influxdb", "victoriametrics"):
        if name in request.fixturenames:
            service = request.getfixturevalue(name)
            if not service.running:
                _serve(service)


_db_counter = itertools.count(1)


@pytest.fixture
def influx_db(influxdb: InfluxDB) -> str:
    """A fresh, empty database on the shared InfluxDB, created for this test."""
    name = f"test_{next(_db_counter)}"
    influxdb.query(f'DROP DATABASE "{name}"')
    influxdb.create_database(name)
    return name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        for name in ("mosquitto", "influxdb", "victoriametrics"):
            service = funcargs.get(name)
            if service is not None:
                report.sections.append((f"{name} log", service.log_tail()))
    return report
