"""The `sen` command line: help on every command, clear errors for bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.cli.service import options as service_options

COMMANDS = [[], ["gateway"], ["gateway", "run"], ["sim"], ["demo"]]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "sen")
def test_every_command_has_help_with_an_example(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert "usage: sen" in out


@pytest.mark.parametrize("argv, complaint", [
    (["sim", "--mqtt", "mqtt://h:1", "--boards", "0"], "must be at least 1"),
    (["sim", "--mqtt", "mqtt://h:1", "--boards", "three"], "not a whole number"),
    (["sim", "--mqtt", "mqtt://h:1", "--readings", "-1"], "must be 0 or more"),
    (["sim", "--mqtt", "mqtt://h:1", "--duration", "nan"], "positive number"),
    (["sim", "--mqtt", "mqtt://h:1", "--heapsize", "64Q"], "heap size"),
    (["sim", "--mqtt", "mqtt://h:1", "--batch-max", "0"], "must be at least 1"),
    (["demo", "--duration", "-5"], "positive number"),
    (["gateway", "run", "--writes-in-flight", "0"], "must be at least 1"),
    (["gateway", "run", "--mqtt", "mqtt://h:1", "--influx", "http://h:2"], "--database"),
])
def test_bad_arguments_exit_2_with_a_clear_message(argv: list[str], complaint: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "mqtt://", "mqtt://host:notaport", "127.0.0.1"])
def test_sim_refuses_a_bad_broker_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--mqtt", url, "--readings", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sen sim: error: ")
    assert "mqtt://HOST:PORT" in err or "bad port" in err
    assert "Traceback" not in err


def test_sim_needs_a_broker_or_serial(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim"]) == 2
    assert "give --mqtt mqtt://HOST:PORT, or --serial" in capsys.readouterr().err


def test_parser_defaults_are_sane() -> None:
    args = build_parser()[0].parse_args(["gateway", "run", "--mqtt", "mqtt://a:1", "--influx", "http://b:2",
                                      "--database", "sen"])
    resolved = service_options(args)  # the parser holds no defaults of its own: the sample's
    assert str(resolved.spool_dir) == ".sen/gateway"
    assert resolved.client_id == "sen-gateway"


def test_a_config_files_values_stand_unless_a_flag_is_given(tmp_path: Path) -> None:
    conf = tmp_path / "gw.toml"
    conf.write_text('[mqtt]\nclient_id = "from-file"\n[spool]\ndir = "/var/lib/sen-x"\n')
    parser = build_parser()[0]
    resolved = service_options(parser.parse_args(["gateway", "run", "--config", str(conf)]))
    assert (resolved.client_id, str(resolved.spool_dir)) == ("from-file", "/var/lib/sen-x")
    resolved = service_options(parser.parse_args(["gateway", "run", "--config", str(conf), "--client-id", "flag",
                                                  "--spool", str(tmp_path)]))
    assert (resolved.client_id, resolved.spool_dir) == ("flag", tmp_path)


def test_gateway_run_takes_the_brokers_ca_for_tls(tmp_path: Path) -> None:
    from gateway.errors import OptionsError

    parser = build_parser()[0]
    args = parser.parse_args(["gateway", "run", "--mqtt", "mqtts://broker:8883", "--influx", "http://db:8086",
                              "--database", "sen", "--mqtt-ca", str(tmp_path / "missing.crt")])
    with pytest.raises(OptionsError, match="mqtt_ca_file"):
        service_options(args)


def test_writes_in_flight_comes_from_the_flag_or_the_config_file_within_its_bound(tmp_path: Path) -> None:
    from gateway.errors import OptionsError

    parser = build_parser()[0]
    base = ["gateway", "run", "--mqtt", "mqtt://a:1", "--influx", "http://b:2", "--database", "sen"]
    assert service_options(parser.parse_args(base)).writes_in_flight == 2  # the sample's
    assert service_options(parser.parse_args([*base, "--writes-in-flight", "1"])).writes_in_flight == 1
    with pytest.raises(OptionsError, match="writes_in_flight: 5 must be at most 4"):
        service_options(parser.parse_args([*base, "--writes-in-flight", "5"]))
    conf = tmp_path / "gw.toml"
    conf.write_text('[influx]\nwrites_in_flight = 9\n')
    with pytest.raises(OptionsError, match=r"gw.toml:2: influx.writes_in_flight"):
        service_options(parser.parse_args([*base, "--config", str(conf)]))
