"""docker-compose.yml is validated here: no Docker engine runs on the development machines.
The checks tie the stack's files together: mounts exist, commands parse, the gateway's config
loads with the gateway's own loader, and names agree between services."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.service import config
from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SEN_SERVICES = ("init", "gateway", "web", "sim")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path or volume name"""
    return {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}


def test_compose_file_passes_docker_compose_config() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose missing: ./run.sh setup installs Debian's docker-compose")
    result = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_whole_pipeline_and_every_mounted_file_exists() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "influxdb", "grafana", "gateway", "web", "sim", "init"} <= set(services)
    for name, service in services.items():
        for source in _mounts(service).values():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    for name in SEN_SERVICES:
        assert services[name]["image"] == "sen:latest"
        assert (ROOT / services[name]["build"] / "Dockerfile").is_file()


@pytest.mark.parametrize("service", ["gateway", "web", "sim"])
def test_compose_commands_are_valid_sen_command_lines(service: str) -> None:
    command = _compose()["services"][service]["command"]
    args = build_parser()[0].parse_args(command)
    assert args.command == command[0]
    # Inside the stack the services reach each other by name, never through localhost.
    assert not any("localhost" in word or "127.0.0.1" in word for word in command)


def test_gateway_config_loads_and_agrees_with_influxdb_and_mosquitto(tmp_path: Path) -> None:
    services = _compose()["services"]
    toml = ROOT / _mounts(services["gateway"])["/etc/sen/gateway.toml"]
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    options = config.load(toml, env={"SEN_MQTT_PASSWORD_FILE": str(secret), "SEN_INFLUX_TOKEN_FILE": str(secret)})
    env = services["influxdb"]["environment"]
    assert options.influx_api == "v2" and options.influx_token == "s3cret"
    assert (options.influx_org, options.influx_bucket) == (env["DOCKER_INFLUXDB_INIT_ORG"],
                                                           env["DOCKER_INFLUXDB_INIT_BUCKET"])
    assert options.mqtt_url == "mqtt://mosquitto:1883" and options.mqtt_username == "sen-gateway"
    # InfluxDB takes its secrets from files (_FILE), the same files the gateway and Grafana read.
    assert "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN" not in env and "DOCKER_INFLUXDB_INIT_PASSWORD" not in env
    token_file = env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE"]
    raw = tomllib_load(toml)
    assert raw["influx"]["token_file"] == token_file
    assert token_file in " ".join(services["grafana"]["entrypoint"])
    init = (ROOT / "deploy/compose/init.sh").read_text()
    assert f"S={Path(token_file).parent}\n" in init and f"secret {Path(token_file).name}\n" in init


def tomllib_load(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text())


def test_mosquitto_listeners_match_the_services() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    blocks = {int(b.split()[0]): b for b in conf.split("\nlistener ")[1:]}
    assert set(blocks) == {1883, 1884, 8883}
    for port in (1883, 8883):
        assert "allow_anonymous false" in blocks[port] and "acl_file /sen/broker/acl" in blocks[port]
    assert "certfile /sen/broker/tls/server.crt" in blocks[8883]
    sim = _compose()["services"]["sim"]["command"]
    assert "mqtt://mosquitto:1884" in sim and sim[sim.index("--site") + 1] == "lab"
    assert "sen/v1/lab/+/telemetry" in (ROOT / "deploy/mosquitto/sim.acl").read_text()
    published = {p.split(":")[1] for p in _compose()["services"]["mosquitto"]["ports"]}
    assert published == {"1883", "8883"}, "the anonymous simulator listener must stay inside the stack"


def test_grafana_provisioning_paths_line_up() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    provider = yaml.safe_load((ROOT / mounts["/etc/grafana/provisioning"] / "dashboards/sen.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert path in mounts and (ROOT / mounts[path]).is_dir()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / mounts[path] / Path(home).name).is_file()
