"""``gateway/sen.sample.toml``: the one source of the gateway's configuration keys and defaults.

:mod:`gateway.service.config` reads a user's file against it, and every default of
:class:`~gateway.service.options.GatewayOptions` is taken from it (:func:`default`), so the
two cannot disagree.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

SAMPLE = Path(__file__).parents[1] / "sen.sample.toml"
_T = TypeVar("_T")

# (section, key) -> GatewayOptions field; file keys are read separately.
FIELDS = {
    ("mqtt", "url"): "mqtt_url", ("mqtt", "client_id"): "client_id",
    ("mqtt", "keepalive_s"): "mqtt_keepalive_s", ("mqtt", "reconnect_max_s"): "reconnect_max_s",
    ("mqtt", "session_expiry_s"): "session_expiry_s", ("mqtt", "receive_max"): "receive_max",
    ("mqtt", "shared_group"): "shared_group", ("mqtt", "watchdog_s"): "watchdog_s",
    ("mqtt", "username"): "mqtt_username", ("mqtt", "ack_interval_s"): "ack_interval_s",
    ("mqtt", "ca_file"): "mqtt_ca_file",
    ("influx", "url"): "influx_url", ("influx", "api"): "influx_api",
    ("influx", "database"): "database", ("influx", "bucket"): "influx_bucket",
    ("influx", "org"): "influx_org", ("influx", "timeout_s"): "influx_timeout_s",
    ("influx", "gzip"): "gzip", ("influx", "batch_size"): "batch_size",
    ("influx", "flush_interval_s"): "flush_interval_s", ("influx", "writes_in_flight"): "writes_in_flight",
    ("spool", "dir"): "spool_dir", ("spool", "max_lines"): "spool_max_lines",
    ("spool", "max_batch"): "max_batch", ("spool", "stop_flush_timeout_s"): "stop_flush_timeout_s",
    ("stats", "interval_s"): "stats_interval_s", ("service", "workers"): "workers",
    ("serial", "ports"): "serial_ports", ("serial", "baudrate"): "serial_baudrate",
    ("web", "port"): "web_port", ("web", "host"): "web_host",
}
SECRET_FILES = {("mqtt", "password_file"): "mqtt_password", ("influx", "token_file"): "influx_token"}
SECRET_ENV = {"SEN_MQTT_PASSWORD": "mqtt_password", "SEN_INFLUX_TOKEN": "influx_token"}


def load_sample() -> dict[str, dict[str, Any]]:
    return tomllib.loads(SAMPLE.read_text(encoding="utf-8"))


@cache
def _sample() -> dict[str, dict[str, Any]]:
    return load_sample()


def default(field: str, kind: type[_T]) -> _T:
    """The sample's value for the options field ``field`` (a key of :data:`FIELDS`), as ``kind``."""
    section, key = next(sk for sk, name in FIELDS.items() if name == field)
    value = _sample()[section][key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise TypeError(f"{SAMPLE}: {section}.{key} = {value!r} is not a {kind.__name__}")
    return value
