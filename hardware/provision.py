"""`sen provision`: a board's config.json from flags (or prompts), checked before it is written.

The board profile's ``pins`` and ``sensors`` are copied in (tests/contract/board_profile.md);
the firmware reads them from config.json and never reads hardware/ itself. The result is
checked here (names, ports, transport) and, when the MicroPython unix port is at hand, by the
firmware's own checker (firmware/lib/config.py), so a config that would stop the board at
boot never reaches it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hardware.boards import BoardProfile
from hardware.errors import ProvisionError as ProvisionError  # re-exported: callers import it from here

REPO_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def build_config(profile: BoardProfile, *, site: str, device_id: str | None, broker_host: str,
                 broker_port: int, transport: str = "mqtt", wifi_ssid: str | None = None,
                 wifi_password: str = "", interval_ms: int = 1000) -> dict[str, Any]:
    config: dict[str, Any] = {
        "site": site, "board": profile.id,
        "broker": {"host": broker_host, "port": broker_port, "keepalive": 30},
        "transport": transport, "interval_ms": interval_ms,
        "pins": profile.pins, "sensors": profile.sensors,
    }
    if device_id is not None:
        config["device_id"] = device_id
    if transport == "serial":
        config["ack"] = "e2e"
    if wifi_ssid:
        config["wifi"] = {"ssid": wifi_ssid, "password": wifi_password}
    check_config(config, profile)
    return config


def check_config(config: dict[str, Any], profile: BoardProfile) -> None:
    for key in ("site", "board"):
        if not isinstance(config.get(key), str) or not _NAME.fullmatch(config[key]):
            raise ProvisionError(f"config key '{key}' must match [a-z0-9_-]{{1,32}} (got {config.get(key)!r})")
    if "device_id" in config and not _NAME.fullmatch(str(config["device_id"])):
        raise ProvisionError(f"config key 'device_id' must match [a-z0-9_-]{{1,32}} (got {config['device_id']!r})")
    port = config["broker"]["port"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ProvisionError(f"config key 'broker.port' must be 1..65535 (got {port!r})")
    if not config["broker"]["host"]:
        raise ProvisionError("config key 'broker.host' must not be empty")
    if config["transport"] not in ("mqtt", "serial"):
        raise ProvisionError(f"config key 'transport' must be mqtt or serial (got {config['transport']!r})")
    if config["transport"] == "mqtt" and profile.mcu != "sim" and "wifi" not in config:
        raise ProvisionError("config key 'wifi.ssid' is missing: an MQTT board needs WiFi (--wifi-ssid), "
                             "or use --transport serial")
    if not 100 <= config["interval_ms"] <= 86_400_000:
        raise ProvisionError(f"config key 'interval_ms' must be 100..86400000 (got {config['interval_ms']})")


def firmware_check(config: dict[str, Any], micropython: str | None = None) -> str | None:
    """Run the firmware's own config checker on the unix port; its error line, or None when fine.

    Returns None without checking when no micropython command is available.
    """
    binary = micropython or shutil.which("micropython") or shutil.which(
        "micropython", path=str(Path(sys.executable).parent))
    if binary is None:
        return None
    lib = REPO_ROOT / "firmware" / "lib"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        code = (f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport config\n"
                "try:\n config.load('config.json')\n print('OK')\n"
                "except config.ConfigError as e:\n print('ERR', e)\n")
        result = subprocess.run([binary, "-c", code], cwd=tmp, capture_output=True, text=True,
                                timeout=30, check=False)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("OK", "ERR"))]
    if lines and lines[-1] == "OK":
        return None
    if lines:
        return lines[-1][4:]
    return f"the firmware's checker did not run: {(result.stderr or result.stdout).strip()[-300:]}"


def write_config(config: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=1) + "\n")
    return out
