"""`sen install-service`: the gateway as a systemd service on Raspberry Pi OS (32- or 64-bit).

Writes, under ROOT (``/`` on the Pi; any directory to stage or test it):

- ``etc/sen/gateway.toml``: from ``gateway/sen.sample.toml`` with the Pi's values (state in
  ``/var/lib/sen``; on 32-bit Pi OS the InfluxDB 1.x ``/write`` API, since InfluxDB 2.x needs a
  64-bit OS). An existing file is kept: it is the operator's.
- ``etc/systemd/system/sen-gateway.service``: ``deploy/systemd/sen-gateway.service`` with
  ``ExecStart`` pointing at this installation's ``sen`` and ``User=``/``Group=`` the ``--user``
  (its group: the user's primary group when it exists on ``/``, else the group of its name that
  ``useradd`` makes). The unit reads USB serial boards through the ``dialout`` group.
- ``var/lib/sen``: the spool and registry directory.

Only with ROOT ``/`` does it also create the system user (``sen``), hand it the directories and,
with ``enable``, run ``systemctl enable --now``. ``dry_run`` prints the plan and touches nothing.
"""

from __future__ import annotations

import grp
import os
import platform
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.service.sample import SAMPLE
from gateway.errors import GatewayError

UNIT_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "sen-gateway.service"
UNIT_NAME = "sen-gateway.service"
_32_BIT = ("armv6l", "armv7l", "armhf", "i386", "i686")


class InstallError(GatewayError):
    """The service could not be installed."""


def detect_bits(machine: str | None = None) -> int:
    machine = machine or platform.machine()
    if machine in _32_BIT or (machine.startswith("arm") and "64" not in machine):
        return 32
    return 64


def pi_config(bits: int) -> str:
    """The sample configuration with the Pi's values filled in (comments kept)."""
    text = SAMPLE.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^dir = ".*"$', 'dir = "/var/lib/sen"', text, count=1)
    if bits == 32:
        text = re.sub(r'(?m)^api = ".*"$', 'api = "v1"', text, count=1)
    head = (f"# Installed by `sen install-service` for {bits}-bit Raspberry Pi OS"
            f"{' (InfluxDB 1.x: apt-get install influxdb)' if bits == 32 else ''}.\n"
            "# InfluxDB 2.x: set api, bucket, org and token_file (a file, mode 0640, group sen).\n"
            "# Secured broker: set username and password_file (see `sen broker add-gateway`).\n")
    return head + text


_NAME_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # what useradd takes (and nothing systemd would expand)


def unit_text(sen_path: str, template: Path = UNIT_TEMPLATE, *, user: str = "sen", group: str | None = None) -> str:
    """The unit template with ``ExecStart`` at ``sen_path`` and ``User=``/``Group=`` set."""
    for what, name in (("user", user), ("group", group or user)):
        if not _NAME_RE.fullmatch(name):
            raise InstallError(f"{what} {name!r} is not a system account name ({_NAME_RE.pattern})")
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as err:
        raise InstallError(f"cannot read the unit template {template}: {err.strerror}") from None
    for key, value in (("ExecStart", sen_path), ("User", user), ("Group", group or user)):
        text, count = re.subn(rf"(?m)^{key}=\S+", _literal(f"{key}={value}"), text, count=1)
        if count != 1:
            raise InstallError(f"{template} has no {key}= line")
    return text


def primary_group(user: str) -> str:
    """The group the service runs as: ``user``'s primary group if it exists here, else ``user``
    (the group ``useradd`` makes for a new system user)."""
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return user


@dataclass
class Plan:
    """What the install does, step by step; ``run`` does it (or, in a dry run, only says it)."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, text: str, action: Callable[[], None]) -> None:
        self.steps.append((text, action))

    def run(self, *, dry_run: bool, say: Callable[[str], None]) -> None:
        for text, action in self.steps:
            say(("would " if dry_run else "") + text)
            if not dry_run:
                action()


def _mkdir(path: Path, mode: int) -> Callable[[], None]:
    def make() -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
    return make


def _write(path: Path, text: str, mode: int) -> Callable[[], None]:
    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
    return write


def _all(*actions: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        for action in actions:
            action()
    return run


def _run(*command: str) -> Callable[[], None]:
    def run() -> None:
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise InstallError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return run


def default_sen_path() -> str:
    here = Path(sys.executable).parent / "sen"
    return str(here) if here.exists() else (shutil.which("sen") or "/usr/local/bin/sen")


def plan(*, root: Path, bits: int, sen_path: str, user: str = "sen", enable: bool = False) -> Plan:
    root = Path(root)
    real = root.resolve() == Path("/")
    etc, state = root / "etc" / "sen", root / "var" / "lib" / "sen"
    config, unit = etc / "gateway.toml", root / "etc" / "systemd" / "system" / UNIT_NAME
    group = primary_group(user) if real else user
    steps = Plan()
    steps.add(f"create {etc} (0750) and {state} (0750)", _all(_mkdir(etc, 0o750), _mkdir(state, 0o750)))
    if config.exists():
        steps.add(f"keep the existing {config}", lambda: None)
    else:
        steps.add(f"write {config} ({bits}-bit Pi OS settings)", _write(config, pi_config(bits), 0o640))
    steps.add(f"write {unit} (ExecStart={sen_path}, User={user}, Group={group})",
              _write(unit, unit_text(sen_path, user=user, group=group), 0o644))
    if real:
        try:
            pwd.getpwnam(user)
        except KeyError:
            steps.add(f"create the system user {user}", _run("useradd", "--system", "--home-dir", "/var/lib/sen",
                                                             "--shell", "/usr/sbin/nologin", user))
        steps.add(f"give {state} to {user} and {config} to group {group}",
                  _all(_run("chown", "-R", f"{user}:{group}", str(state)),
                       _run("chown", f"root:{group}", str(etc), str(config))))
        steps.add("systemctl daemon-reload", _run("systemctl", "daemon-reload"))
        if enable:
            steps.add(f"systemctl enable --now {UNIT_NAME}", _run("systemctl", "enable", "--now", UNIT_NAME))
    return steps



def _literal(line: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that puts ``line`` in as it is (no backslash escapes)."""
    return lambda _match: line

def next_steps(*, root: Path, bits: int, user: str, enable: bool) -> list[str]:
    packages = ("mosquitto influxdb" if bits == 32
                else "mosquitto (and InfluxDB 2.x from InfluxData, or Debian's influxdb 1.x)")
    lines = [f"system packages: apt-get install {packages}"]
    if Path(root).resolve() != Path("/"):
        lines += [f"staged under {root}: copy it to the Pi's /, then there:",
                  f"  useradd --system --home-dir /var/lib/sen --shell /usr/sbin/nologin {user}",
                  f"  chown -R {user}:{user} /var/lib/sen && chown root:{user} /etc/sen /etc/sen/gateway.toml"]
    if not enable or Path(root).resolve() != Path("/"):
        lines.append(f"  systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")
    lines.append("edit /etc/sen/gateway.toml, check it with `sen gateway check-config /etc/sen/gateway.toml`")
    return lines


def needs_root(root: Path) -> bool:
    return Path(root).resolve() == Path("/") and os.geteuid() != 0
