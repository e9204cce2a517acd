"""`sen broker ...`, `sen web`, `sen install-service`: help with an example, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main

COMMANDS = [["broker"], ["broker", "add-device"], ["broker", "add-gateway"], ["broker", "tls"],
            ["broker", "conf"], ["web"], ["install-service"]]


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_deploy_command_has_help_with_an_example(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "example:\n  sen " in out or "example:\n  sudo sen " in out


def test_bad_names_are_refused_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker", "add-device", "--dir", str(tmp_path), "--site", "Farm!", "--device", "d"]) == 2
    err = capsys.readouterr().err
    assert "must match" in err and "Traceback" not in err


def test_broker_conf_writes_the_mosquitto_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path
    assert main(["broker", "conf", "--dir", str(base), "--tls-dir", str(base / "tls")]) == 0
    text = (base / "sen.conf").read_text()
    assert "allow_anonymous false" in text and f"acl_file {base.resolve() / 'acl'}" in text
    assert "listener 8883" in text and f"certfile {base.resolve() / 'tls' / 'server.crt'}" in text


def test_broker_conf_binds_client_ids_caps_packets_and_keeps_plain_local_with_tls(tmp_path: Path) -> None:
    def conf(*flags: str) -> list[str]:
        assert main(["broker", "conf", "--dir", str(tmp_path), *flags]) == 0
        return (tmp_path / "sen.conf").read_text().splitlines()

    plain = conf("--bind", "192.168.1.10")
    assert "listener 1883 192.168.1.10" in plain and "max_packet_size 16384" in plain
    tls = conf("--tls-dir", str(tmp_path / "tls"))
    listeners = [n for n, line in enumerate(tls) if line.startswith("listener ")]
    assert [tls[n] for n in listeners] == ["listener 1883 127.0.0.1", "listener 8883"]
    for n in listeners:  # the setting is per listener: every one carries it
        assert tls[n + 1] == "use_username_as_clientid true"
    only_tls = conf("--tls-dir", str(tmp_path / "tls"), "--no-plain")
    assert [line for line in only_tls if line.startswith("listener ")] == ["listener 8883"]
    assert main(["broker", "conf", "--dir", str(tmp_path), "--no-plain"]) == 2


def test_broker_tls_with_the_ca_key_kept_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import subprocess

    out, kept = tmp_path / "tls", tmp_path / "offline" / "ca.key"
    assert main(["broker", "tls", "--out", str(out), "--host", "pi.local"]) == 0
    ca = (out / "ca.crt").read_bytes()
    kept.parent.mkdir()
    shutil.move(out / "ca.key", kept)  # the operator keeps the CA key off the broker
    # Without the key the CA cannot sign: refused, not silently replaced (boards trust the old one).
    assert main(["broker", "tls", "--out", str(out), "--host", "pi.local", "--host", "10.0.0.2"]) == 2
    assert "--ca-key" in capsys.readouterr().err and (out / "ca.crt").read_bytes() == ca
    assert main(["broker", "tls", "--out", str(out), "--host", "pi.local", "--host", "10.0.0.2",
                 "--ca-key", str(kept)]) == 0
    assert (out / "ca.crt").read_bytes() == ca and not (out / "ca.key").exists()
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(out / "ca.crt"), str(out / "server.crt")],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
