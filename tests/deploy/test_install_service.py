"""`sen install-service` into a staging root: the unit, the config and the data directory."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from gateway.ops import install
from gateway.service import config
from gateway.cli import main


@pytest.mark.parametrize("arch, api", [("32", "v1"), ("64", "auto")])
def test_install_into_a_staging_root(tmp_path: Path, arch: str, api: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert main(["install-service", "--root", str(root), "--arch", arch, "--sen", "/opt/sen/venv/bin/sen"]) == 0
    out = capsys.readouterr().out
    unit = root / "etc/systemd/system/sen-gateway.service"
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.read_string(unit.read_text())
    assert parsed["Service"]["ExecStart"].startswith("/opt/sen/venv/bin/sen gateway run --config /etc/sen/gateway.toml")
    assert parsed["Service"]["User"] == "sen"
    assert (root / "var/lib/sen").is_dir() and oct((root / "var/lib/sen").stat().st_mode & 0o777) == "0o750"
    toml = root / "etc/sen/gateway.toml"
    assert oct(toml.stat().st_mode & 0o777) == "0o640"
    options = config.load(toml, env={})  # the installed file passes the gateway's own checks
    assert options.influx_api == api and str(options.spool_dir) == "/var/lib/sen"
    assert "useradd --system" in out and "systemctl daemon-reload" in out
    # A second run keeps the operator's edits.
    toml.write_text(toml.read_text().replace('database = "sen"', 'database = "farm"'))
    assert main(["install-service", "--root", str(root), "--arch", arch]) == 0
    assert "keep the existing" in capsys.readouterr().out
    assert config.load(toml, env={}).database == "farm"


def test_dry_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-service", "--root", str(tmp_path / "r"), "--arch", "32", "--dry-run"]) == 0
    assert not (tmp_path / "r").exists()
    out = capsys.readouterr().out
    assert "would write" in out and "gateway.toml" in out


def test_installing_into_slash_without_root_is_refused_or_dry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-service", "--dry-run", "--arch", "64"]) == 0
    assert "would write /etc/systemd/system/sen-gateway.service" in capsys.readouterr().out


def test_word_size_detection() -> None:
    assert install.detect_bits("armv7l") == 32 and install.detect_bits("armv6l") == 32
    assert install.detect_bits("aarch64") == 64 and install.detect_bits("x86_64") == 64
