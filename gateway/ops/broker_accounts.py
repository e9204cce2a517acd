"""A secured Mosquitto 2 for Sen: one account per device, an ACL, and TLS with a local CA.

Everything lives in one broker directory (e.g. ``/etc/mosquitto/sen``)::

    accounts.json          who exists (the ACL is regenerated from it; no secrets in it)
    passwd                 Mosquitto password file (PBKDF2-SHA512, as mosquitto_passwd writes it)
    acl                    Mosquitto ACL: a device writes only its own telemetry/status and
                           reads only its own ack/cmd; the gateway reads all telemetry/status/ack
                           and writes ack/cmd
    secrets/USER.password  each account's password, mode 0600, shown once when made
    sen.conf               the Mosquitto lines that turn it on (include it from mosquitto.conf)

A device's user name is ``SITE.DEVICE`` (``.`` is not allowed in either name, so it cannot
be ambiguous). The password file is written with Debian's ``mosquitto_passwd`` when it is
installed, else with the same hash computed here (the tests check both against a real broker).

``sen.conf`` binds every client id to its account (``use_username_as_clientid``): the broker
replaces the id a client sends with its user name, so no account can resume, wipe or kick
another's session (the gateway's, with its queued readings, above all), and two boards of the
same name at two sites stay two clients. It caps a packet at :data:`MAX_PACKET_SIZE`, and with
TLS it keeps plain MQTT to this machine (127.0.0.1) or leaves it out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

_LOGGER = logging.getLogger(__name__)

NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")
USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,65}")
GATEWAY_USER = "sen-gateway"
ACCOUNTS = "accounts.json"
PASSWD = "passwd"
ACL = "acl"
CONF = "sen.conf"
SECRETS = "secrets"
TLS_CA_DER = "ca.der"  # the CA as the boards read it (written by `sen broker tls`)
# A packet is at most 16 KiB: a telemetry message is at most 4 KiB (DESIGN.md) and an OTA
# chunk about 8 KiB; a client that sends more is disconnected before the broker reads it.
MAX_PACKET_SIZE = 16384
LOCALHOST = "127.0.0.1"
_PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
_SALT_BYTES = 12


class BrokerSecurityError(GatewayError):
    """A broker account, ACL or certificate could not be made."""


@dataclass(frozen=True, kw_only=True)
class Account:
    user: str
    kind: str  # "device" or "gateway"
    site: str = ""
    device: str = ""


def device_user(site: str, device: str) -> str:
    for what, value in (("site", site), ("device", device)):
        if not NAME_RE.fullmatch(value):
            raise BrokerSecurityError(f"{what} {value!r} must match [a-z0-9_-]{{1,32}} (the topic contract)")
    return f"{site}.{device}"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A password-file hash in Mosquitto 2's ``$7$`` format (PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    return f"$7${_PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(accounts: list[Account]) -> str:
    """The ACL: anonymous clients get nothing; each account only its own topics."""
    lines = ["# Written by `sen broker`; edit accounts with `sen broker add-device|add-gateway`.",
             "# No topic lines before the first `user`: anonymous clients may do nothing.", ""]
    for acc in sorted(accounts, key=lambda a: (a.kind != "gateway", a.user)):
        lines.append(f"user {acc.user}")
        if acc.kind == "gateway":
            # status and ota both ways: a gateway republishes its USB boards' status and hands
            # them their ota chunks (gateway/service/serial_bridge.py)
            lines += ["topic read sen/v1/+/+/telemetry", "topic readwrite sen/v1/+/+/status",
                      "topic readwrite sen/v1/+/+/ack", "topic write sen/v1/+/+/cmd",
                      "topic readwrite sen/v1/+/+/ota"]
        else:
            base = f"sen/v1/{acc.site}/{acc.device}"
            lines += [f"topic write {base}/telemetry", f"topic write {base}/status",
                      f"topic read {base}/ack", f"topic read {base}/cmd", f"topic read {base}/ota"]
        lines.append("")
    return "\n".join(lines)


def conf_text(broker_dir: Path, *, port: int = 1883, tls_dir: Path | None = None, tls_port: int = 8883,
              bind: str = "", plain: bool = True) -> str:
    """Mosquitto lines: no anonymous clients, the password file and ACL, client ids bound to
    accounts, a packet size cap, and the listeners.

    Without ``tls_dir``: one plain listener on ``port`` (``bind``: an address, "" for every
    interface). With it: the TLS listener on ``tls_port`` (and ``bind``), and plain MQTT on
    ``port`` of 127.0.0.1 only, for a gateway on the broker's machine (``plain=False``: none).
    """
    if tls_dir is None and not plain:
        raise BrokerSecurityError("without TLS the plain listener is the only one: it cannot be left out")
    lines = ["# Written by `sen broker conf`: password file, ACL, no anonymous clients.",
             "per_listener_settings false", "allow_anonymous false",
             f"password_file {broker_dir / PASSWD}", f"acl_file {broker_dir / ACL}",
             "# A packet is at most 16 KiB (a telemetry message <= 4 KiB, an OTA chunk ~8 KiB);",
             "# a client sending a bigger one is disconnected.",
             f"max_packet_size {MAX_PACKET_SIZE}"]
    # Per listener: the broker takes the user name as the client id, so one account can
    # neither resume nor wipe nor kick off another's session (the gateway's above all).
    bound = "use_username_as_clientid true"
    if tls_dir is None:
        lines += [f"listener {port}{f' {bind}' if bind else ''}", bound]
        return "\n".join(lines) + "\n"
    if plain:
        lines += ["# Plain MQTT for clients on this machine only (the gateway); boards use TLS.",
                  f"listener {port} {LOCALHOST}", bound]
    lines += [f"listener {tls_port}{f' {bind}' if bind else ''}", bound, f"cafile {tls_dir / 'ca.crt'}",
              f"certfile {tls_dir / 'server.crt'}", f"keyfile {tls_dir / 'server.key'}",
              "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class Listener:
    port: int
    bind: str  # "" for every interface
    tls: bool


def read_listeners(conf: Path) -> list[Listener]:
    """The listeners of a ``sen.conf`` (a ``listener`` line, TLS when a ``certfile`` follows it)."""
    found: list[dict[str, Any]] = []
    for line in conf.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["listener"] and len(words) >= 2 and words[1].isdigit():
            found.append({"port": int(words[1]), "bind": words[2] if len(words) > 2 else "", "tls": False})
        elif words[:1] == ["certfile"] and found:
            found[-1]["tls"] = True
    return [Listener(**item) for item in found]


def board_listener(broker_dir: Path) -> Listener | None:
    """The listener boards connect to: the TLS one when ``sen.conf`` has it, else the plain
    one not bound to this machine; None without a ``sen.conf``."""
    conf = broker_dir / CONF
    if not conf.exists():
        return None
    listeners = read_listeners(conf)
    for listener in [*(item for item in listeners if item.tls), *listeners]:
        if listener.tls or listener.bind != LOCALHOST:
            return listener
    return None


class BrokerDir:
    """The broker directory: accounts, password file, ACL and secrets, kept consistent."""

    def __init__(self, path: Path, *, passwd_tool: str | None = "auto") -> None:
        self.path = Path(path)
        if passwd_tool == "auto":
            passwd_tool = shutil.which("mosquitto_passwd")
        self.passwd_tool = passwd_tool

    def accounts(self) -> list[Account]:
        file = self.path / ACCOUNTS
        if not file.exists():
            return []
        try:
            return [Account(**item) for item in json.loads(file.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as err:
            raise BrokerSecurityError(f"{file}: not an accounts file: {err}") from None

    def secret_path(self, user: str) -> Path:
        return self.path / SECRETS / f"{user}.password"

    def add(self, account: Account, *, password: str | None = None, rotate: bool = False) -> str:
        """Create (or with ``rotate``, re-key) an account; returns its password."""
        if not USER_RE.fullmatch(account.user):
            raise BrokerSecurityError(f"user name {account.user!r} must match [A-Za-z0-9_.-]{{1,65}}")
        accounts = [a for a in self.accounts() if a.user != account.user]
        exists = len(accounts) != len(self.accounts())
        if exists and not rotate:
            raise BrokerSecurityError(f"{account.user} exists already; pass --rotate to give it a new password")
        password = password or secrets.token_urlsafe(24)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / SECRETS).mkdir(mode=0o700, exist_ok=True)
        self._set_password(account.user, password)
        _write(self.secret_path(account.user), password + "\n", 0o600)
        accounts.append(account)
        _write(self.path / ACCOUNTS, json.dumps([a.__dict__ for a in accounts], indent=1) + "\n", 0o644)
        _write(self.path / ACL, acl_text(accounts), 0o644)
        _LOGGER.info("broker account %s (%s) written to %s", account.user, account.kind, self.path)
        return password

    def _set_password(self, user: str, password: str) -> None:
        passwd = self.path / PASSWD
        if self.passwd_tool:
            # -b puts the password on mosquitto_passwd's command line for a moment (visible to
            # local users in ps); without the tool the same hash is written from Python.
            create = [] if passwd.exists() else ["-c"]
            result = subprocess.run([self.passwd_tool, *create, "-b", str(passwd), user, password],
                                    capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                raise BrokerSecurityError(f"mosquitto_passwd failed: {result.stderr.strip() or result.stdout}")
            passwd.chmod(0o640)
            return
        lines = passwd.read_text(encoding="utf-8").splitlines() if passwd.exists() else []
        kept = [line for line in lines if line and line.split(":", 1)[0] != user]
        _write(passwd, "\n".join([*kept, f"{user}:{hash_password(password)}"]) + "\n", 0o640)


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically with ``mode`` from the start (secrets never exist world-readable),
    keeping an existing file's owner and group (``passwd`` is the broker user's group's to read,
    as mosquitto_passwd keeps it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    if old is not None and (old.st_uid, old.st_gid) != (tmp.stat().st_uid, tmp.stat().st_gid):
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except PermissionError:
            _LOGGER.warning("%s: could not keep its owner and group (%s:%s): check who may read it",
                            path, old.st_uid, old.st_gid)
    os.replace(tmp, path)
