"""The gateway's configuration: ``sen.sample.toml`` (defaults) < a TOML file < ``SEN_*`` < flags.

The sample file (gateway/sen.sample.toml, read by :mod:`gateway.service.sample`) is the one
source of keys and defaults: a key it does
not have is an error, and a value must have the sample's type. Errors name the file, the
key and its line. Secrets come from files (``password_file``, ``token_file``) or the
environment (``SEN_MQTT_PASSWORD``, ``SEN_INFLUX_TOKEN``) and are never logged.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import OptionsError
from gateway.service.options import GatewayOptions
from gateway.service.sample import FIELDS, SECRET_ENV, SECRET_FILES, load_sample

def _line_of(text: str, section: str, key: str) -> int | None:
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if m := re.fullmatch(r"\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped):
            current = m.group(1)
        elif current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return None


def _where(path: Path, text: str, section: str, key: str) -> str:
    line = _line_of(text, section, key) if key else _line_of(text, section, "") or None
    return f"{path}:{line}" if line else str(path)


def _coerce(sample: object, value: object, what: str) -> object:
    """``value`` as the sample's type (env values come as text)."""
    if isinstance(value, str) and not isinstance(sample, str):
        text = value.strip().lower()
        try:
            if isinstance(sample, bool):
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return text in ("true", "1", "yes")
            return int(text) if isinstance(sample, int) else float(text)
        except ValueError:
            raise OptionsError(f"{what}: {value!r} is not a {type(sample).__name__}") from None
    if isinstance(sample, bool) != isinstance(value, bool) or (
            not isinstance(value, type(sample)) and not (isinstance(sample, float) and isinstance(value, int))):
        raise OptionsError(f"{what}: {value!r} must be a {type(sample).__name__}, like the sample's "
                           f"{sample!r}")
    return value


def _coerce_key(section: str, key: str, sample: object, value: object, what: str) -> object:
    """:func:`_coerce`, but ``service.workers`` takes a number as well as the sample's "auto", and
    ``influx.gzip`` true or false."""
    if (section, key) == ("influx", "gzip"):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            return _coerce(True, value, what)
        except OptionsError:
            raise OptionsError(f"{what}: {value!r} must be true, false or \"auto\"") from None
    if (section, key) != ("service", "workers"):
        return _coerce(sample, value, what)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise OptionsError(f"{what}: {value!r} must be \"auto\" or a number")


def _read_secret(path_text: str, what: str) -> str:
    try:
        return Path(path_text).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise OptionsError(f"{what}: cannot read {path_text!r}: {err.strerror}") from None


def load(path: Path | None, *, env: Mapping[str, str] | None = None,
         flags: Mapping[str, object] | None = None) -> GatewayOptions:
    """Options from the sample's defaults, ``path`` (if any), ``env`` and ``flags``."""
    env = os.environ if env is None else env
    values = load_sample()
    text = ""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
            given = tomllib.loads(text)
        except OSError as err:
            raise OptionsError(f"{path}: cannot read: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise OptionsError(f"{path}: not valid TOML: {err}") from None
        for section, table in given.items():
            if section not in values or not isinstance(table, dict):
                raise OptionsError(f"{_where(path, text, section, '')}: unknown section [{section}]")
            for key, value in table.items():
                where = _where(path, text, section, key)
                if key not in values[section]:
                    raise OptionsError(f"{where}: unknown key {section}.{key}")
                values[section][key] = _coerce_key(section, key, values[section][key], value,
                                                   f"{where}: {section}.{key}")
    for section, table in values.items():
        for key in table:
            name = f"SEN_{section.upper()}_{key.upper()}"
            if name in env:
                table[key] = _coerce_key(section, key, load_sample()[section][key], env[name], name)
    kwargs: dict[str, Any] = {field: values[s][k] for (s, k), field in FIELDS.items()}
    kwargs["spool_dir"] = Path(kwargs["spool_dir"])
    kwargs["serial_ports"] = tuple(p.strip() for p in kwargs["serial_ports"].split(",") if p.strip())
    for (s, k), field in SECRET_FILES.items():
        if values[s][k]:
            kwargs[field] = _read_secret(values[s][k], f"{s}.{k}")
    for name, field in SECRET_ENV.items():
        if env.get(name):
            kwargs[field] = env[name]
    kwargs.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return GatewayOptions(**kwargs)
    except OptionsError as err:
        key = str(err).split(":", 1)[0]
        for (s, k), field in FIELDS.items():
            if field == key and path is not None and _line_of(text, s, k):
                raise OptionsError(f"{path}:{_line_of(text, s, k)}: {s}.{k}: "
                                   f"{str(err).split(':', 1)[1].strip()}") from None
        raise
