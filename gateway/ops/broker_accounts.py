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
            lines += ["topic read sen/v1/+/+/telemetry", "topic read sen/v1/+/+/status",
                      "topic readwrite sen/v1/+/+/ack", "topic write sen/v1/+/+/cmd"]
        else:
            base = f"sen/v1/{acc.site}/{acc.device}"
            lines += [f"topic write {base}/telemetry", f"topic write {base}/status",
                      f"topic read {base}/ack", f"topic read {base}/cmd"]
        lines.append("")
    return "\n".join(lines)


def conf_text(broker_dir: Path, *, port: int = 1883, tls_dir: Path | None = None, tls_port: int = 8883,
              bind: str = "") -> str:
    """Mosquitto lines for a secured listener (and a TLS one when ``tls_dir`` is given)."""
    host = f" {bind}" if bind else ""
    lines = ["# Written by `sen broker`: password file, ACL, no anonymous clients.",
             "per_listener_settings false", "allow_anonymous false",
             f"password_file {broker_dir / PASSWD}", f"acl_file {broker_dir / ACL}",
             f"listener {port}{host}"]
    if tls_dir is not None:
        lines += [f"listener {tls_port}{host}", f"cafile {tls_dir / 'ca.crt'}",
                  f"certfile {tls_dir / 'server.crt'}", f"keyfile {tls_dir / 'server.key'}",
                  "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


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
    """Write atomically with ``mode`` from the start (secrets never exist world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
