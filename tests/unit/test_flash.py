"""Flashing and provisioning as far as no board allows: the steps, the port checks, the CLI."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.boards import load_board
from hardware.flash import FlashError, check_port, deploy_steps, explain, flash_steps
from hardware.provision import ProvisionError, build_config, firmware_check


def test_esptool_steps_v5_and_v4() -> None:
    yolo = load_board("yolo-uno")
    erase, write = flash_steps(yolo, "/dev/ttyACM0", Path("fw.bin"), esptool_version=5)
    assert erase[-5:] == ["--port", "/dev/ttyACM0", "--baud", "460800", "erase-flash"]
    assert write[2:5] == ["esptool", "--chip", "esp32s3"] and write[-3:] == ["write-flash", "0x0", "fw.bin"]
    (old,) = flash_steps(load_board("esp32-devkitc"), "/dev/ttyUSB0", Path("fw.bin"), erase=False,
                         esptool_version=4)
    assert old[-3:] == ["write_flash", "0x1000", "fw.bin"] and "--chip" in old and "esp32" in old
    with pytest.raises(FlashError, match="virtual"):
        flash_steps(load_board("sim"), "/dev/null", Path("x"))


def test_mpremote_steps(tmp_path: Path) -> None:
    steps = deploy_steps("/dev/ttyACM0", tmp_path / "c.json")
    assert all(s[2:5] == ["mpremote", "connect", "/dev/ttyACM0"] for s in steps)
    assert steps[0][-5:-2] == ["fs", "cp", "-r"] and steps[0][-1] == ":"
    assert steps[-2][-2:] == [str(tmp_path / "c.json"), ":config.json"] and steps[-1][-1] == "reset"


def test_port_missing_busy_and_forbidden(tmp_path: Path) -> None:
    with pytest.raises(FlashError, match="no such port"):
        check_port(str(tmp_path / "ttyUSB9"))
    master, slave = os.openpty()
    name = os.ttyname(slave)
    try:
        check_port(name)  # free: fine
        holder = os.open(name, os.O_RDWR | os.O_NOCTTY)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive=True does
        with pytest.raises(FlashError, match="busy"):
            check_port(name)
        os.close(holder)
    finally:
        os.close(slave)
        os.close(master)


def test_port_without_permission(tmp_path: Path) -> None:
    forbidden = tmp_path / "ttyS9"
    forbidden.write_text("")
    forbidden.chmod(0)
    if os.access(forbidden, os.R_OK):
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(FlashError, match="permission denied"):
        check_port(str(forbidden))


def test_tool_output_is_explained() -> None:
    assert "download mode" in explain("A fatal error occurred: Failed to connect to ESP32-S3: No serial data received.")
    assert "busy" in explain("Could not exclusively lock port /dev/ttyUSB0")


def _sen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_cli_dry_runs_print_the_exact_steps(tmp_path: Path) -> None:
    (tmp_path / "fw.bin").write_bytes(b"\0")
    flash = _sen("flash", "--board", "esp32-devkitc", "--port", "/dev/ttyUSB0", "--image", "fw.bin", "--dry-run",
                 cwd=tmp_path)
    assert flash.returncode == 0, flash.stderr
    assert "-m esptool --chip esp32 --port /dev/ttyUSB0" in flash.stdout and "0x1000 fw.bin" in flash.stdout
    deploy = _sen("deploy", "--port", "/dev/ttyUSB0", "--dry-run")
    assert deploy.returncode == 0 and "-m mpremote connect /dev/ttyUSB0 fs cp -r" in deploy.stdout


def test_cli_flash_dry_run_refuses_a_missing_image(tmp_path: Path) -> None:
    result = _sen("flash", "--board", "yolo-uno", "--port", "/dev/ttyUSB0", "--image", str(tmp_path / "missing.bin"),
                  "--dry-run")
    assert result.returncode == 2, result.stdout
    assert "missing.bin: no such image" in result.stderr and "esptool" not in result.stdout


def test_cli_flash_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\0")
    result = _sen("flash", "--board", "yolo-uno", "--port", str(tmp_path / "ttyACM7"), "--image", str(image))
    assert result.returncode == 2 and "no such port" in result.stderr and "Traceback" not in result.stderr


def test_provision_copies_pins_and_sensors_and_checks(tmp_path: Path) -> None:
    yolo = load_board("yolo-uno")
    config = build_config(yolo, site="lab", device_id="yolo-01", broker_host="10.0.0.2", broker_port=1883,
                          wifi_ssid="net")
    assert config["pins"]["i2c"]["scl"] == 12 and config["sensors"] == [{"type": "dht20", "addr": 56}]
    assert firmware_check(config) is None
    with pytest.raises(ProvisionError, match="wifi.ssid"):
        build_config(yolo, site="lab", device_id=None, broker_host="h", broker_port=1883)
    with pytest.raises(ProvisionError, match="'site'"):
        build_config(yolo, site="Lab!", device_id=None, broker_host="h", broker_port=1883, transport="serial")
    assert "interval_ms" in (firmware_check({**config, "interval_ms": 5}) or "")
    out = tmp_path / "c.json"
    result = _sen("provision", "--board", "yolo-uno", "--site", "lab", "--transport", "serial", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["transport"] == "serial"
    bad = _sen("provision", "--board", "yolo-uno", "--site", "BAD SITE", "--transport", "serial", "--out", str(out))
    assert bad.returncode == 2 and "site" in bad.stderr
