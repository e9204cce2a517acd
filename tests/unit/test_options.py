"""GatewayOptions: parsing and validation at the edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import GatewayError, OptionsError
from gateway.service.options import GatewayOptions, parse_influx_url, parse_mqtt_url


def _options(**overrides: object) -> GatewayOptions:
    values: dict[str, object] = {"mqtt_url": "mqtt://127.0.0.1:1883", "influx_url": "http://localhost:8086",
                                 "database": "sen", "spool_dir": Path("/tmp/spool")}
    values.update(overrides)
    return GatewayOptions(**values)  # type: ignore[arg-type]


def test_defaults_and_endpoints() -> None:
    options = _options()
    assert options.client_id == "sen-gateway" and options.batch_size > 0
    assert (options.mqtt.host, options.mqtt.port) == ("127.0.0.1", 1883)
    assert (options.influx.host, options.influx.port) == ("localhost", 8086)
    assert parse_mqtt_url("mqtt://broker").port == 1883
    assert parse_influx_url("http://db").port == 8086


def test_options_are_frozen_and_keyword_only() -> None:
    options = _options()
    with pytest.raises(AttributeError):
        options.database = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        GatewayOptions("mqtt://a:1", "http://b:2", "db", Path("."))  # type: ignore[call-arg]


@pytest.mark.parametrize(("key", "value"), [
    ("mqtt_url", "http://127.0.0.1:1883"),
    ("mqtt_url", "127.0.0.1:1883"),
    ("mqtt_url", "mqtt://:1883"),
    ("mqtt_url", "mqtt://host:notaport"),
    ("mqtt_url", "mqtt://host:99999"),
    ("mqtt_url", "mqtt://host:1883/path"),
    ("mqtt_url", "mqtt://user:pw@host:1883"),
    ("influx_url", "mqtt://127.0.0.1:8086"),
    ("influx_url", "http://host:8086?db=x"),
    ("database", ""),
    ("database", 'a"b'),
    ("database", "a b"),
    ("client_id", ""),
    ("client_id", "has space"),
    ("batch_size", 0),
    ("batch_size", 1.5),
    ("batch_size", True),
    ("writes_in_flight", 0),
    ("writes_in_flight", 5),
    ("writes_in_flight", 1.5),
    ("receive_max", 0),
    ("receive_max", 65536),
    ("flush_interval_s", -1),
    ("influx_timeout_s", 0),
    ("spool_dir", "/tmp/spool"),
])
def test_bad_values_name_the_option_and_the_value(key: str, value: object) -> None:
    with pytest.raises(OptionsError) as info:
        _options(**{key: value})
    assert isinstance(info.value, GatewayError)
    assert key in str(info.value) and repr(value) in str(info.value)


def test_every_default_is_the_sample_configurations() -> None:
    """gateway/sen.sample.toml is the one source: each options default is read from it."""
    import dataclasses

    from gateway.service import config
    from gateway.service.sample import FIELDS, SECRET_FILES, load_sample

    sample = load_sample()
    keys = {(section, key) for section, table in sample.items() for key in table}
    assert keys == set(FIELDS) | set(SECRET_FILES), "a sample key no option reads, or an option the sample lacks"
    fields = {f.name: f for f in dataclasses.fields(GatewayOptions)}
    assert set(FIELDS.values()) <= set(fields)
    loaded = config.load(None, env={})
    for (section, key), name in FIELDS.items():
        default = fields[name].default
        if default is dataclasses.MISSING:  # required: config.load takes the sample's value
            continue
        assert default == getattr(loaded, name), f"{name}: {default!r} is not the sample's {section}.{key}"
    assert loaded.client_id == sample["mqtt"]["client_id"] and loaded.spool_dir == Path(sample["spool"]["dir"])


def test_a_sample_value_of_the_wrong_type_is_refused() -> None:
    from gateway.service.sample import default

    with pytest.raises(TypeError, match="mqtt.client_id"):
        default("client_id", int)


def test_one_broker_url_rule_for_the_gateway_and_the_simulator() -> None:
    # `sen sim --mqtt` parses with the gateway's parse_mqtt_url (there is one rule).
    assert (parse_mqtt_url("mqtt://127.0.0.1:1884").host, parse_mqtt_url("mqtt://127.0.0.1:1884").port) == \
        ("127.0.0.1", 1884)
    assert (parse_mqtt_url("mqtt://broker").host, parse_mqtt_url("mqtt://broker").port) == ("broker", 1883)


@pytest.mark.parametrize("url", ["http://h:1", "mqtt://", "mqtt://h:99999", "h:1883"])
def test_parse_mqtt_url_refuses(url: str) -> None:
    with pytest.raises(OptionsError):
        parse_mqtt_url(url, option="--mqtt")


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 1), (4, 2), (6, 4), (16, 4)])
def test_auto_workers_leave_two_cores_to_the_broker_and_the_database(cores: int, workers: int) -> None:
    from gateway.service.options import auto_workers

    assert auto_workers(cores) == workers


@pytest.mark.parametrize("value", [0, 65, -1, True, 1.5, "many", ""])
def test_workers_must_be_auto_or_a_number(value: object) -> None:
    with pytest.raises(OptionsError, match="workers"):
        _options(workers=value)


def test_workers_with_a_broker_user_name() -> None:
    # `sen broker conf` takes the user name as client id: one session, so one process.
    assert _options(workers="auto", mqtt_username="gw", client_id="gw").worker_count == 1
    with pytest.raises(OptionsError, match="workers: 2 needs a session per process"):
        _options(workers=2, mqtt_username="gw", client_id="gw")
    assert _options(workers=3).worker_count == 3


def test_workers_from_the_file_the_environment_and_the_flag(tmp_path: Path) -> None:
    from gateway.cli import build_parser
    from gateway.cli.service import options as cli_options
    from gateway.service import config

    assert config.load(None, env={}).workers == "auto"
    path = tmp_path / "gw.toml"
    path.write_text("[service]\nworkers = 2\n")
    assert config.load(path, env={}).worker_count == 2
    assert config.load(path, env={"SEN_SERVICE_WORKERS": "auto"}).workers == "auto"
    assert config.load(None, env={"SEN_SERVICE_WORKERS": "3"}).workers == 3
    path.write_text("[service]\nworkers = 1.5\n")
    with pytest.raises(OptionsError, match=r"gw.toml:2: service.workers"):
        config.load(path, env={})
    parser, _ = build_parser()
    assert parser.parse_args(["gateway", "run", "--config", str(path), "--workers", "auto"]).workers == "auto"
    path.write_text("")
    args = parser.parse_args(["gateway", "run", "--config", str(path), "--workers", "2"])
    assert cli_options(args).worker_count == 2


def test_gzip_is_auto_true_or_false_from_the_file_and_the_environment(tmp_path: Path) -> None:
    from gateway.service import config

    loaded = config.load(None, env={})
    assert loaded.gzip == "auto" and loaded.compress is None  # the sinks decide by InfluxDB's host
    path = tmp_path / "gw.toml"
    path.write_text("[influx]\ngzip = false\n")
    assert config.load(path, env={}).compress is False
    assert config.load(path, env={"SEN_INFLUX_GZIP": "yes"}).compress is True
    assert config.load(path, env={"SEN_INFLUX_GZIP": "Auto"}).compress is None
    path.write_text('[influx]\ngzip = "sometimes"\n')
    with pytest.raises(OptionsError, match=r"gw.toml:2: influx.gzip: 'sometimes' must be true, false or \"auto\""):
        config.load(path, env={})
    with pytest.raises(OptionsError, match="gzip: 1 must be"):
        _options(gzip=1)
