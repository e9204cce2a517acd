"""Every reading carries its sensor, "s" (DESIGN.md at the repo root, Payload: r[].s), on the
real VM over the serial transport (the frames carry the MQTT payload): the driver's name, the
address beside it for two unnamed sensors of a kind, and the name config gives a sensor,
which the config check refuses outside [a-z0-9_-]{1,32}."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fw_board import Board, board_config
from test_fw_serial import SerialBoard

pytestmark = pytest.mark.firmware

BME280 = {"temp_c", "p_hpa", "rh_pct"}
SHT = {"temp_c", "rh_pct"}


def _readings(micropython_bin: str, repo_root: Path, flash: Path, sensors: list[dict[str, Any]],
              n: int = 30) -> list[dict[str, Any]]:
    b = SerialBoard(micropython_bin, repo_root, flash, ack="puback", max_readings=n, batch_max=5,
                    sensors=sensors)
    try:
        b.start()
        assert b.wait() == 0, "\n".join(b.lines)
        readings = b.readings()
    finally:
        b.kill()
    assert [r["seq"] for r in readings] == list(range(1, n + 1))
    # one short member per reading, right after the time: {"seq":..,"ts":..,"s":"..","m":{..}}
    assert all(list(r) == ["seq", "ts", "s", "m"] for r in readings), readings[:3]
    return readings


def test_two_sensors_of_a_kind_are_told_apart_by_address(micropython_bin: str, repo_root: Path,
                                                         tmp_path: Path) -> None:
    rs = _readings(micropython_bin, repo_root, tmp_path, [
        {"type": "sht31", "addr": 0x44}, {"type": "sht31", "addr": 0x45}, {"type": "bme280", "addr": 0x76}])
    assert {r["s"] for r in rs} == {"sht31_44", "sht31_45", "bme280"}
    assert all(set(r["m"]) == (BME280 if r["s"] == "bme280" else SHT) for r in rs), rs


def test_config_names_a_sensor(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    # a config name wins, even one that is another sensor's driver name: the unnamed sht31
    # then gives way (its address beside its name), the named one never changes
    rs = _readings(micropython_bin, repo_root, tmp_path, [
        {"type": "sht31", "addr": 0x44, "name": "greenhouse"}, {"type": "bme280", "addr": 0x76, "name": "sht31"},
        {"type": "sht31", "addr": 0x45}, {"type": "dht20", "addr": 0x38}])
    assert {r["s"] for r in rs} == {"greenhouse", "sht31", "sht31_45", "dht20"}
    assert all(set(r["m"]) == BME280 for r in rs if r["s"] == "sht31"), rs
    assert all(set(r["m"]) == SHT for r in rs if r["s"] != "sht31"), rs


@pytest.mark.parametrize("name", ["SHT 31!", "Sht31", "", "x" * 33, 31])
def test_a_bad_sensor_name_is_refused(name: Any, micropython_bin: str, repo_root: Path,
                                      tmp_path: Path) -> None:
    board = Board(micropython_bin, repo_root, tmp_path)
    board.write_config(board_config("127.0.0.1", 1, "fw-sname",
                                    sensors=[{"type": "bme280", "addr": 0x76},
                                             {"type": "sht31", "addr": 0x44, "name": name}]))
    assert board.run(timeout=20) == 2
    lines = [ln for ln in board.output().splitlines() if "config error" in ln]
    assert len(lines) == 1, board.output()
    assert re.search(r"config\.json: key 'sensors\[1\]\.name' must match \[a-z0-9_-\]\{1,32\}", lines[0]), lines
