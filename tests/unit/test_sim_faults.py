"""Fault machinery of the simulator: the pty link (unplug/replug/garbage), the TCP fault proxy,
fault plans. No firmware runs here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from hardware.faultproxy import FaultProxy
from hardware.faults import FILE_ACTIONS, FaultPlan, FaultPlanError, inject
from hardware.faultsfile import FaultsFile
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
                     ([{"at_s": 1, "fault": "sensor", "sensor": "sht31", "value": "smoke"}], "value"),
                     ([{"at_s": 1, "fault": "modem_slow", "ms": -1}], "ms"),
                     ([{"at_s": 1, "fault": "modem_slow", "ms": 60_001}], "ms"),
                     ([{"at_s": 1, "fault": "modem_slow", "ms": "800"}], "ms"),
                     ([{"at_s": 1, "fault": "modem_slow", "m": 800}], "m"),  # a typo is not the default
                     ([{"at_s": 1, "fault": "modem_garble", "value": "no"}], "value"),
                     ([{"at_s": 1, "fault": "wifi_down", "value": 0}], "value"),
                     ([{"at_s": 1, "fault": "clock_jump", "offset_ms": "1h"}], "offset_ms"),
                     ([{"at_s": 1, "fault": "cell_down", "value": True}], "value"),
                     ([{"at_s": 1, "fault": "garbage", "bytes": 1.5}], "bytes")]:
        with pytest.raises(FaultPlanError, match=f"key '{key}'"):
            FaultPlan.parse(bad, "plan.json")
    with pytest.raises(FaultPlanError, match="does not exist"):
        FaultPlan.parse([{"at_s": 0, "fault": "cut", "board": 3}]).start([])


def test_the_cellular_faults_write_what_the_simulated_modem_reads(tmp_path: Path) -> None:
    board = FaultsFile(tmp_path)
    steps = [("cell_down", {}, {"cell": "down"}), ("modem_reset", {}, {"cell": "down", "modem_reset": 1}),
             ("modem_reset", {}, {"cell": "down", "modem_reset": 2}), ("cell_up", {}, {"modem_reset": 2}),
             ("modem_slow", {"ms": 800}, {"modem_reset": 2, "modem_slow_ms": 800}),
             ("modem_slow", {"ms": 0}, {"modem_reset": 2}),
             ("modem_garble", {}, {"modem_reset": 2, "modem_garble": True}),
             ("modem_garble", {"value": False}, {"modem_reset": 2}),
             ("reg_denied", {}, {"modem_reset": 2, "reg": "denied"}), ("reg_allowed", {}, {"modem_reset": 2}),
             ("sim_missing", {}, {"modem_reset": 2, "sim": "missing"}), ("sim_in", {}, {"modem_reset": 2}),
             ("clear", {}, {})]
    for fault, args, after in steps:
        FaultPlan.parse([{"at_s": 0, "fault": fault, **args}])  # each is a plan step too
        FILE_ACTIONS[fault](board, args)
        assert board.faults() == after, fault


def test_sen_fault_writes_into_the_boards_of_a_running_sim(tmp_path: Path) -> None:
    for device in ("sim-0000", "sim-0001"):
        (tmp_path / device).mkdir()
        (tmp_path / device / "config.json").write_text("{}")
    assert inject(tmp_path, ["sim-0001"], "cell_down", {}) == {"sim-0001": {"cell": "down"}}
    assert inject(tmp_path, [], "modem_slow", {"ms": 500}) == {
        "sim-0000": {"modem_slow_ms": 500}, "sim-0001": {"cell": "down", "modem_slow_ms": 500}}
    for args, says in [(("power_cut", {}), "needs the sen sim running the boards"),
                       (("melt", {}), "must be one of wifi_down, sensor"),
                       (("modem_slow", {"ms": "fast"}), "key 'ms' must be milliseconds"),
                       (("cell_up", {"board": 0}), "board is not a key here")]:
        with pytest.raises(FaultPlanError, match=says):
            inject(tmp_path, [], *args)
    with pytest.raises(FaultPlanError, match=r"no board sim-9 under .* \(boards: sim-0000, sim-0001\)"):
        inject(tmp_path, ["sim-9"], "cell_up", {})
    with pytest.raises(FaultPlanError, match="no boards under"):
        inject(tmp_path / "nowhere", [], "cell_up", {})
    assert json.loads((tmp_path / "sim-0000" / "faults.json").read_text()) == {"modem_slow_ms": 500}


def test_the_sen_fault_command(tmp_path: Path) -> None:
    (tmp_path / "sim-0000").mkdir()
    (tmp_path / "sim-0000" / "config.json").write_text("{}")

    def sen(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "fault", *argv, "--state-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    done = sen("modem_slow", "ms=800")
    assert done.returncode == 0 and done.stdout == 'sim-0000: modem_slow -> faults.json {"modem_slow_ms": 800}\n'
    for argv, says in [(("modem_slow", "ms"), "'ms' is not KEY=VALUE"),
                       (("modem_slow", "ms=soon"), "key 'ms' must be milliseconds"),
                       (("unplug",), "unplug needs the sen sim running the boards")]:
        refused = sen(*argv)
        assert refused.returncode == 2 and refused.stderr.startswith("sen fault: error: ") and says in refused.stderr, \
            refused.stderr
    assert json.loads((tmp_path / "sim-0000" / "faults.json").read_text()) == {"modem_slow_ms": 800}
