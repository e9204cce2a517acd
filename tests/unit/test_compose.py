"""docker-compose.yml is validated here: no Docker engine runs on the development machines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_file_passes_docker_compose_config() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose missing: ./run.sh setup installs Debian's docker-compose")
    result = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_whole_pipeline() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "influxdb", "gateway", "sim"} <= set(services)
    for mount in services["mosquitto"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"compose mounts missing file {source}"
    assert (ROOT / services["gateway"]["build"] / "Dockerfile").is_file()


@pytest.mark.parametrize("service", ["gateway", "sim"])
def test_compose_commands_are_valid_sen_command_lines(service: str) -> None:
    command = _compose()["services"][service]["command"]
    args = build_parser()[0].parse_args(command)
    assert args.command == command[0]
    # Inside the stack the services reach each other by name, never through localhost.
    assert "mqtt://mosquitto:1883" in command
