"""Fault machinery of the simulator: the pty link (unplug/replug/garbage), the TCP fault proxy,
fault plans. No firmware runs here."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import serial

from hardware.faultproxy import FaultProxy
from hardware.faults import FaultPlan, FaultPlanError
from hardware.ptylink import PtyLink


def _read_until(port: serial.Serial, needle: bytes, timeout: float = 3.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        got += port.read(256)
    return got


def test_pty_link_relays_both_ways_and_survives_unplug(tmp_path: Path) -> None:
    board_out_r, board_out_w = os.pipe()   # board stdout
    board_in_r, board_in_w = os.pipe()     # board stdin
    link = PtyLink(tmp_path / "dev" / "ttySIM0")
    link.start()
    link.attach(board_out_r, board_in_w)
    try:
        assert link.link.resolve() == Path(link.tty)
        host = serial.Serial(str(link.link), timeout=0.2)
        time.sleep(0.3)  # the relay waits a moment after a host opens the port
        os.write(board_out_w, b"SEN1 hello\n")
        assert b"SEN1 hello\n" in _read_until(host, b"hello")
        host.write(b"ack line\n")
        deadline = time.monotonic() + 3
        got = b""
        os.set_blocking(board_in_r, False)
        while b"ack line" not in got and time.monotonic() < deadline:
            try:
                got += os.read(board_in_r, 100)
            except BlockingIOError:
                time.sleep(0.05)
        assert got == b"ack line\n"
        link.inject(b"\x00\xffgarbage\n")
        assert b"garbage" in _read_until(host, b"garbage")
        link.unplug()
        assert not link.link.exists()
        with pytest.raises(serial.SerialException):
            for _ in range(20):
                host.read(10)
        host.close()
        new_tty = link.plug()
        assert link.link.resolve() == Path(new_tty)
        host = serial.Serial(str(link.link), timeout=0.2)
        time.sleep(0.3)
        os.write(board_out_w, b"after replug\n")
        assert b"after replug" in _read_until(host, b"replug")
        host.close()
    finally:
        link.close()
        for fd in (board_out_r, board_out_w, board_in_r, board_in_w):
            os.close(fd)


def _echo(conn: socket.socket) -> None:
    with conn:
        try:
            for data in iter(lambda: conn.recv(100), b""):
                conn.sendall(data)
        except OSError:
            pass


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_fault_proxy_pass_cut_stall_heal() -> None:
    server, port = _echo_server()
    proxy = FaultProxy(("127.0.0.1", port)).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            c.sendall(b"ping")
            assert c.recv(10) == b"ping"
            proxy.stall()
            c.sendall(b"held")
            c.settimeout(0.3)
            with pytest.raises(socket.timeout):
                c.recv(10)
            proxy.heal()
            c.settimeout(2)
            assert c.recv(10) == b"held"
            proxy.cut()
            assert c.recv(10) == b""  # connection dropped
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            assert c.recv(10) == b""  # refused while cut
        proxy.heal()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            c.sendall(b"back")
            assert c.recv(10) == b"back"
    finally:
        proxy.close()
        server.close()


def test_fault_plan_parsing() -> None:
    plan = FaultPlan.parse([{"at_s": 3, "fault": "replug", "board": 0}, {"at_s": 1, "fault": "unplug", "board": 0},
                            {"at_s": 2, "fault": "sensor", "sensor": "sht31", "value": "nack"}])
    assert [s.fault for s in plan.steps] == ["unplug", "sensor", "replug"]
    assert plan.steps[1].board is None
    for bad, key in [([{"at_s": 1, "fault": "melt"}], "fault"), ([{"at_s": -1, "fault": "cut"}], "at_s"),
                     ([{"at_s": 1, "fault": "sensor"}], "sensor"),
                     ([{"at_s": 1, "fault": "cut", "board": "x"}], "board"),
                     ([{"at_s": 1, "fault": "sensor", "sensor": "sht31", "value": "smoke"}], "value")]:
        with pytest.raises(FaultPlanError, match=f"key '{key}'"):
            FaultPlan.parse(bad, "plan.json")
    with pytest.raises(FaultPlanError, match="does not exist"):
        FaultPlan.parse([{"at_s": 0, "fault": "cut", "board": 3}]).start([])
