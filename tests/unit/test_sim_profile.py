"""`sen sim --profile NAME` / `--config FILE`: the virtual boards take the board, pins and sensors of
firmware/examples/NAME.json (or of a config.json), the rest stays the simulator's (no boards started)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.boards import load_board
from hardware.provision import build_config
from hardware.sim import PROFILES_DIR, SimError, SimOptions, board_config, load_profile


def test_the_smart_garden_profile() -> None:
    profile = load_profile("smart-garden")
    assert set(profile) == {"board", "pins", "sensors"} and profile["board"] == "yolo-uno"
    assert [s["type"] for s in profile["sensors"]] == ["dht20", "soil", "bh1750"]
    soil = profile["sensors"][1]
    assert soil["pin"] == load_board("yolo-uno").pins["adc"]["soil"] and soil["dry"] > soil["wet"]
    options = SimOptions(broker_host="127.0.0.1", broker_port=1884, readings=5, profile=profile)
    config = board_config(options, 3)
    assert config["sensors"] == profile["sensors"] and config["pins"] == profile["pins"]
    assert config["device_id"] == "sim-0003" and config["broker"]["port"] == 1884 and "wifi" not in config
    assert config["board"] == "yolo-uno" and config["max_readings"] == 5
    assert "sensors" not in board_config(SimOptions(broker_host="h", broker_port=1), 0)  # the default board


def test_every_example_is_a_profile() -> None:
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    assert "smart-garden" in names
    for name in names:
        assert isinstance(load_profile(name)["sensors"], list)


def test_a_provisioned_config_is_a_profile(tmp_path: Path) -> None:
    written = build_config(load_board("yolo-uno"), site="garden", device_id="yolo-01", broker_host="10.0.0.2",
                           broker_port=1883, transport="serial", sensors=["dht20", "ds18b20", "hcsr04"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(written))
    assert load_profile(path=path) == {k: written[k] for k in ("board", "pins", "sensors")}


def test_bad_profiles_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="unknown profile 'orchard'.*smart-garden"):
        load_profile("orchard")
    (tmp_path / "c.json").write_text('{"site": "x"}')
    with pytest.raises(SimError, match="key 'sensors'"):
        load_profile(path=tmp_path / "c.json")
    with pytest.raises(SimError, match="cannot read"):
        load_profile(path=tmp_path / "missing.json")


def test_profile_and_config_do_not_go_together(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway", "sim", "--mqtt", "mqtt://127.0.0.1:1", "--profile",
                           "smart-garden", "--config", str(tmp_path / "c.json")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "not allowed with" in done.stderr
    done = subprocess.run([sys.executable, "-m", "gateway", "sim", "--mqtt", "mqtt://127.0.0.1:1", "--profile",
                           "orchard", "--state-dir", str(tmp_path / "s")], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "unknown profile 'orchard'" in done.stderr and "Traceback" not in done.stderr
