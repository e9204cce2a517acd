"""The gateway's options, checked once at the edge (the CLI builds them)."""

from __future__ import annotations

import os
import re
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import OptionsError
from gateway.service.sample import default

_DATABASE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_GROUP_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MAX_WRITES_IN_FLIGHT = 4  # InfluxDB on a Pi has four cores at most to work on them
INFLUX_APIS = ("auto", "v1", "v2")
MAX_WORKERS = 64
AUTO_WORKERS_CAP = 4  # "auto" never starts more receiving processes than this
WORKERS_GROUP = "sen"  # the shared subscription's group when shared_group is ""


def auto_workers(cores: int | None = None) -> int:
    """``workers = "auto"``: the cores less two (Mosquitto and InfluxDB run on the same Pi), at
    least 1, at most :data:`AUTO_WORKERS_CAP`; 1 on up to 3 cores."""
    if cores is None:  # the cores this process may run on (a container's cpuset), else all
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(AUTO_WORKERS_CAP, cores - 2))


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    scheme: str
    host: str
    port: int


def parse_url(option: str, url: str, *, schemes: dict[str, int]) -> Endpoint:
    """``SCHEME://HOST[:PORT]`` with a scheme from ``schemes`` (scheme → default port)."""
    example = f"{next(iter(schemes))}://HOST:PORT"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise OptionsError(f"{option}: {url!r} is not a valid URL ({err}); expected {example}") from err
    if parts.scheme not in schemes:
        raise OptionsError(f"{option}: {url!r} has scheme {parts.scheme!r}; expected {example}")
    if not parts.hostname:
        raise OptionsError(f"{option}: {url!r} has no host; expected {example}")
    if parts.username or parts.password:
        raise OptionsError(f"{option}: {url!r} carries credentials, which are not supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OptionsError(f"{option}: {url!r} has a path or query; expected {example}")
    if port == 0:
        raise OptionsError(f"{option}: {url!r} has port 0")
    return Endpoint(scheme=parts.scheme, host=parts.hostname,
                    port=port if port is not None else schemes[parts.scheme])


def parse_mqtt_url(url: str, *, option: str = "mqtt_url", tls: bool = False) -> Endpoint:
    """``mqtt://HOST[:PORT]`` (or ``tcp://``); with ``tls`` (the gateway) also ``mqtts://HOST[:PORT]``,
    port 8883 by default. Tools that speak no TLS (``sen tail``, ``sen sim``) refuse ``mqtts://``."""
    schemes = {"mqtt": 1883, "tcp": 1883, **({"mqtts": 8883} if tls else {})}
    return parse_url(option, url, schemes=schemes)


def mqtt_tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context that verifies the broker's certificate and its name: against ``ca_file``
    (PEM), or the system's CAs when it is ""; TLS 1.2 at least."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except FileNotFoundError:
        raise OptionsError(f"mqtt_ca_file: cannot read {ca_file!r}: no such file") from None
    except ssl.SSLError as err:  # before OSError, of which it is one
        raise OptionsError(f"mqtt_ca_file: {ca_file!r} is not a PEM CA certificate ({err.reason})") from None
    except OSError as err:
        raise OptionsError(f"mqtt_ca_file: cannot read {ca_file!r}: {err.strerror or err}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def probe_broker(endpoint: Endpoint, tls: ssl.SSLContext | None, ca_file: str) -> str:
    """Why the broker cannot be reached (paho does not tell): one TCP connect and, with ``tls``,
    one handshake with the same context, 2 s at most each."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=2.0) as sock:
            if tls is None:
                return "TCP connects, MQTT handshake failed"
            with tls.wrap_socket(sock, server_hostname=endpoint.host):
                return "TCP and TLS connect, MQTT handshake failed"
    except ssl.SSLCertVerificationError as err:
        return (f"TLS: the broker's certificate is refused: certificate verify failed: {err.verify_message}; "
                f"it must chain to {ca_file or 'a CA of the system'} (mqtt.ca_file) and name {endpoint.host!r}")
    except ssl.SSLError as err:
        return f"TLS handshake failed: {err.reason or err} (is {endpoint.port} the broker's TLS port?)"
    except OSError as err:
        return str(err) or type(err).__name__


def parse_influx_url(url: str, *, option: str = "influx_url") -> Endpoint:
    return parse_url(option, url, schemes={"http": 8086, "https": 443})


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    """Everything :func:`gateway.service.main.run` needs; invalid values raise :class:`OptionsError`."""

    mqtt_url: str
    influx_url: str
    database: str
    spool_dir: Path
    # Every default is the sample configuration's (gateway/sen.sample.toml), read by default().
    client_id: str = default("client_id", str)
    batch_size: int = default("batch_size", int)
    writes_in_flight: int = default("writes_in_flight", int)  # 1-4: a second only behind a full batch
    flush_interval_s: float = default("flush_interval_s", float)
    mqtt_keepalive_s: int = default("mqtt_keepalive_s", int)
    reconnect_max_s: int = default("reconnect_max_s", int)
    influx_timeout_s: float = default("influx_timeout_s", float)
    stop_flush_timeout_s: float = default("stop_flush_timeout_s", float)
    shared_group: str = default("shared_group", str)  # "": no shared subscription
    session_expiry_s: int = default("session_expiry_s", int)
    receive_max: int = default("receive_max", int)
    watchdog_s: float = default("watchdog_s", float)
    max_batch: int = default("max_batch", int)
    spool_max_lines: int = default("spool_max_lines", int)
    stats_interval_s: float = default("stats_interval_s", float)
    gzip: bool | str = default("gzip", str)  # true, false or "auto" (off when InfluxDB is on loopback)
    influx_api: str = default("influx_api", str)
    influx_org: str = default("influx_org", str)
    influx_bucket: str = default("influx_bucket", str)  # "": the database name
    influx_token: str = field(default="", repr=False)  # a secret: from token_file or SEN_INFLUX_TOKEN
    mqtt_username: str = default("mqtt_username", str)
    mqtt_password: str = field(default="", repr=False)  # a secret: from password_file or SEN_MQTT_PASSWORD
    mqtt_ca_file: str = default("mqtt_ca_file", str)  # with mqtts://: the broker's CA ("": the system's)
    ack_interval_s: float = default("ack_interval_s", float)  # a device's end-to-end acks coalesce within this
    serial_ports: tuple[str, ...] = ()  # paths or globs of USB serial boards (the sample's "": none)
    serial_baudrate: int = default("serial_baudrate", int)
    web_port: int = default("web_port", int)  # 0: no web page
    web_host: str = default("web_host", str)
    workers: int | str = default("workers", str)  # receiving processes: a number, or "auto"

    def __post_init__(self) -> None:
        mqtt = parse_mqtt_url(self.mqtt_url, tls=True)
        parse_influx_url(self.influx_url)
        if not _DATABASE_RE.fullmatch(self.database):
            raise OptionsError(f"database: {self.database!r} must match {_DATABASE_RE.pattern}")
        if not isinstance(self.spool_dir, Path):
            raise OptionsError(f"spool_dir: {self.spool_dir!r} must be a pathlib.Path")
        if not _CLIENT_ID_RE.fullmatch(self.client_id):
            raise OptionsError(f"client_id: {self.client_id!r} must match {_CLIENT_ID_RE.pattern}")
        if self.mqtt_username and self.client_id != self.mqtt_username:
            raise OptionsError(
                f"client_id: {self.client_id!r} must equal mqtt_username {self.mqtt_username!r}: a broker set "
                "up by `sen broker conf` takes the user name as the client id (use_username_as_clientid), so "
                "the gateway's session is its account's; set mqtt.client_id to the username")
        if not isinstance(self.mqtt_ca_file, str):
            raise OptionsError(f"mqtt_ca_file: {self.mqtt_ca_file!r} must be a file name (a str)")
        if self.mqtt_ca_file and mqtt.scheme != "mqtts":
            raise OptionsError(f"mqtt_ca_file: {self.mqtt_ca_file!r} is set but mqtt_url {self.mqtt_url!r} is "
                               "not TLS: use mqtts://HOST:8883")
        if self.mqtt_ca_file:
            mqtt_tls_context(self.mqtt_ca_file)  # readable and a CA certificate, or a clear error now
        _positive("batch_size", self.batch_size, integer=True)
        _positive("writes_in_flight", self.writes_in_flight, integer=True, high=_MAX_WRITES_IN_FLIGHT)
        _positive("serial_baudrate", self.serial_baudrate, integer=True)
        _positive("ack_interval_s", self.ack_interval_s, allow_zero=True)
        if isinstance(self.web_port, bool) or not isinstance(self.web_port, int) or not 0 <= self.web_port <= 65535:
            raise OptionsError(f"web_port: {self.web_port!r} must be a TCP port, or 0 for no web page")
        if not isinstance(self.serial_ports, tuple) or not all(
                isinstance(p, str) and p and "\n" not in p for p in self.serial_ports):
            raise OptionsError(f"serial_ports: {self.serial_ports!r} must be a tuple of port paths or globs")
        _positive("flush_interval_s", self.flush_interval_s, allow_zero=True)
        _positive("mqtt_keepalive_s", self.mqtt_keepalive_s, integer=True)
        _positive("reconnect_max_s", self.reconnect_max_s, integer=True)
        _positive("influx_timeout_s", self.influx_timeout_s)
        _positive("stop_flush_timeout_s", self.stop_flush_timeout_s, allow_zero=True)
        if self.shared_group and not _GROUP_RE.fullmatch(self.shared_group):
            raise OptionsError(f"shared_group: {self.shared_group!r} must match {_GROUP_RE.pattern}")
        for name in ("session_expiry_s", "max_batch"):
            _positive(name, getattr(self, name), integer=True)
        _positive("receive_max", self.receive_max, integer=True, high=65535)
        _positive("spool_max_lines", self.spool_max_lines, integer=True, allow_zero=True)
        _positive("watchdog_s", self.watchdog_s)
        _positive("stats_interval_s", self.stats_interval_s)
        if self.workers != "auto" and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                       or not 1 <= self.workers <= MAX_WORKERS):
            raise OptionsError(f"workers: {self.workers!r} must be \"auto\" or a number from 1 to {MAX_WORKERS}")
        if self.mqtt_username and self.workers not in ("auto", 1):
            raise OptionsError(f"workers: {self.workers!r} needs a session per process, but with mqtt_username "
                               "the broker takes the user name as the client id: use 1 (or auto)")
        if self.influx_api not in INFLUX_APIS:
            raise OptionsError(f"influx_api: {self.influx_api!r} must be one of {', '.join(INFLUX_APIS)}")
        if not isinstance(self.gzip, bool) and self.gzip != "auto":
            raise OptionsError(f"gzip: {self.gzip!r} must be true, false or \"auto\"")

    @property
    def mqtt(self) -> Endpoint:
        return parse_mqtt_url(self.mqtt_url, tls=True)

    @property
    def mqtt_tls(self) -> bool:
        """``mqtts://``: the broker is reached over TLS and verified (``mqtt_ca_file``)."""
        return self.mqtt.scheme == "mqtts"

    @property
    def compress(self) -> bool | None:
        """``gzip`` for the sinks: None for "auto" (they decide by InfluxDB's host)."""
        return None if self.gzip == "auto" else bool(self.gzip)

    @property
    def worker_count(self) -> int:
        """How many receiving processes to run (``workers``, with "auto" resolved)."""
        if self.workers == "auto":
            return 1 if self.mqtt_username else auto_workers()
        return int(self.workers)

    @property
    def telemetry_group(self) -> str:
        """The shared subscription group the workers take telemetry from."""
        return self.shared_group or WORKERS_GROUP

    @property
    def influx(self) -> Endpoint:
        return parse_influx_url(self.influx_url)


def _positive(option: str, value: object, *, integer: bool = False, allow_zero: bool = False,
              high: float | None = None) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise OptionsError(f"{option}: {value!r} must be {kind}")
    number = float(value)  # type: ignore[arg-type]
    if number < 0 or (number == 0 and not allow_zero) or number != number:
        raise OptionsError(f"{option}: {value!r} must be {'>= 0' if allow_zero else '> 0'}")
    if high is not None and number > high:
        raise OptionsError(f"{option}: {value!r} must be at most {high}")
