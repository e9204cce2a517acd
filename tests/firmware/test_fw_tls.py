"""The firmware's TLS option against a real Mosquitto with a TLS listener and a local CA made by
`sen broker tls`: with `broker.ca` the broker's certificate is verified, and a broker signed by
another CA is refused; TLS without a CA is refused by the config checker unless `broker.tls`
says "insecure", which then connects without verifying and says so on the console."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ops.broker_tls import make_tls
from gateway.devstack import Mosquitto, free_port
from tests.firmware.fw_board import Board, Collector, board_config

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, int, Path]]:
    base = tmp_path_factory.mktemp("tls")
    files = make_tls(base / "tls", hosts=["localhost", "127.0.0.1"])
    tls_port = free_port()
    broker = Mosquitto(base / "mosquitto", extra_conf=[
        f"listener {tls_port} 127.0.0.1", "allow_anonymous true", f"cafile {files['ca.crt']}",
        f"certfile {files['server.crt']}", f"keyfile {files['server.key']}"])
    broker.start()
    yield broker, tls_port, files["ca.der"]
    broker.stop()


def _board(micropython_bin: str, repo_root: Path, flash: Path, port: int, ca: Path | None, dev: str,
           tls: bool | str = True, **over: Any) -> Board:
    board = Board(micropython_bin, repo_root, flash, heap=None)
    flash.mkdir(parents=True, exist_ok=True)
    broker: dict[str, Any] = {"host": "localhost", "port": port, "keepalive": 30, "tls": tls}
    if ca is not None:
        shutil.copy(ca, flash / "ca.der")
        broker["ca"] = "ca.der"
    board.write_config(board_config("localhost", port, dev, broker=broker, **over))
    return board


def test_tls_with_the_ca_delivers_every_reading(tls_broker: tuple[Mosquitto, int, Path], micropython_bin: str,
                                                repo_root: Path, tmp_path: Path) -> None:
    broker, tls_port, ca = tls_broker
    col = Collector(broker.host, broker.port)  # the plain listener of the same broker
    board = _board(micropython_bin, repo_root, tmp_path, tls_port, ca, "fw-tls", max_readings=5, interval_ms=50)
    try:
        assert board.run(timeout=60) == 0, board.output()
        deadline = time.monotonic() + 10
        while len(set(col.seqs("fwtest", "fw-tls"))) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Exactly once is the resilience tests' subject; here: every reading came through TLS.
        assert set(col.seqs("fwtest", "fw-tls")) == {1, 2, 3, 4, 5}
        assert "tx boot 1 seq ..5" in board.output()
    finally:
        board.kill()
        col.close()


def test_a_broker_signed_by_another_ca_is_refused(tls_broker: tuple[Mosquitto, int, Path], micropython_bin: str,
                                                  repo_root: Path, tmp_path: Path) -> None:
    broker, tls_port, _ = tls_broker
    other = make_tls(tmp_path / "other", hosts=["localhost"])["ca.der"]
    col = Collector(broker.host, broker.port)
    board = _board(micropython_bin, repo_root, tmp_path, tls_port, other, "fw-tls-bad", max_readings=3)
    try:
        board.start()
        deadline = time.monotonic() + 5
        while "tls:" not in board.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # and it keeps trying
        assert col.seqs("fwtest", "fw-tls-bad") == []
        assert "mqtt: connected" not in board.output()
        assert "tls:" in board.output(), "the console says why: the certificate was refused"
        assert board.proc.poll() is None, "a refused broker is retried, never a crash or a reboot"
    finally:
        board.kill()
        col.close()


def test_tls_without_a_ca_is_refused_at_boot(tls_broker: tuple[Mosquitto, int, Path], micropython_bin: str,
                                             repo_root: Path, tmp_path: Path) -> None:
    # It used to connect verifying nothing, silently.
    broker, tls_port, _ = tls_broker
    col = Collector(broker.host, broker.port)
    board = _board(micropython_bin, repo_root, tmp_path, tls_port, None, "fw-tls-noca", max_readings=3)
    try:
        assert board.run(timeout=30) == 2, board.output()
        lines = [ln for ln in board.output().splitlines() if "config error" in ln]
        assert len(lines) == 1 and "key 'broker.ca' is missing" in lines[0], board.output()
        assert '"insecure"' in lines[0]  # the way out, named
        time.sleep(0.5)
        assert col.seqs("fwtest", "fw-tls-noca") == []
    finally:
        board.kill()
        col.close()


def test_tls_insecure_connects_unverified_and_says_so(tls_broker: tuple[Mosquitto, int, Path], micropython_bin: str,
                                                      repo_root: Path, tmp_path: Path) -> None:
    broker, tls_port, _ = tls_broker
    col = Collector(broker.host, broker.port)
    board = _board(micropython_bin, repo_root, tmp_path, tls_port, None, "fw-tls-insecure", tls="insecure",
                   max_readings=3, interval_ms=50)
    try:
        assert board.run(timeout=60) == 0, board.output()
        deadline = time.monotonic() + 10
        while len(set(col.seqs("fwtest", "fw-tls-insecure"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(col.seqs("fwtest", "fw-tls-insecure")) == {1, 2, 3}
        assert 'broker.tls "insecure": TLS without verifying the broker' in board.output()
    finally:
        board.kill()
        col.close()
