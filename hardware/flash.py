"""Flashing (esptool) and deploying (mpremote) with the ecosystem's own tools.

    flash_steps(profile, port, image)  -> [erase, write at the profile's offset]   (esptool)
    deploy_steps(port, config, mpy=)   -> [mkdir, copy lib, copy main/boot/config, reset] (mpremote)

Each step is an argument list; ``--dry-run`` prints them, :func:`run_steps` runs them with their
output (esptool's progress) on the terminal and turns the usual failures into one clear line:
no such port, permission denied, port busy, board not in download mode.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from hardware.boards import BoardProfile
from hardware.errors import FlashError as FlashError  # re-exported: callers import it from here

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO_ROOT / "firmware"
DEFAULT_BAUD = 460800

Step = list[str]


def esptool_major() -> int:
    """The installed esptool's major version (5 renamed write_flash to write-flash); 5 if absent."""
    try:
        return int(metadata.version("esptool").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 5


def _cmd(name: str, major: int) -> str:
    return name if major >= 5 else name.replace("-", "_")


def flash_steps(profile: BoardProfile, port: str, image: Path, *, baud: int = DEFAULT_BAUD,
                erase: bool = True, esptool_version: int | None = None) -> list[Step]:
    if profile.flash_offset is None:
        raise FlashError(f"board {profile.id!r} is virtual: nothing to flash")
    major = esptool_major() if esptool_version is None else esptool_version
    base = [sys.executable, "-m", "esptool", "--chip", profile.chip, "--port", port, "--baud", str(baud)]
    steps = [base + [_cmd("erase-flash", major)]] if erase else []
    steps.append(base + [_cmd("write-flash", major), hex(profile.flash_offset), str(image)])
    return steps


def deploy_steps(port: str, config: Path | None, *, staged_lib: Path | None = None) -> list[Step]:
    """mpremote steps: firmware/lib (or a staged .mpy copy), boot.py, main.py, config.json, reset."""
    base = [sys.executable, "-m", "mpremote", "connect", port]
    lib = staged_lib or FIRMWARE_DIR / "lib"
    if lib.name != "lib":
        raise FlashError(f"{lib}: the staged library folder must be named 'lib'")
    steps = [base + ["fs", "cp", "-r", str(lib), ":"]]
    steps.append(base + ["fs", "cp", str(FIRMWARE_DIR / "boot.py"), str(FIRMWARE_DIR / "main.py"), ":"])
    if config is not None:
        steps.append(base + ["fs", "cp", str(config), ":config.json"])
    steps.append(base + ["reset"])
    return steps


def compile_lib(out_dir: Path, *, mpy_cross: str = "mpy-cross", arch: str = "xtensawin") -> Path:
    """firmware/lib compiled to .mpy in OUT_DIR/lib (mpy-cross; xtensawin for ESP32/S3, rv32imc for C3)."""
    out_dir = out_dir / "lib"
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted((FIRMWARE_DIR / "lib").glob("*.py")):
        target = out_dir / (source.stem + ".mpy")
        result = subprocess.run([mpy_cross, f"-march={arch}", "-s", source.name, "-o", str(target), str(source)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise FlashError(f"mpy-cross failed on {source}: {result.stderr.strip()}")
    return out_dir


def mpy_arch(profile: BoardProfile) -> str:
    return "rv32imc" if profile.mcu == "esp32c3" else "xtensawin"


def check_port(port: str) -> None:
    """Fail early and clearly: the port is missing, not ours to open, or held by another program."""
    if not os.path.exists(port):
        raise FlashError(f"{port}: no such port; is the board plugged in? (ls /dev/serial/by-id/)")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        raise FlashError(f"{port}: permission denied; add yourself to the 'dialout' group "
                         "(sudo usermod -aG dialout $USER) and log in again") from None
    except OSError as err:
        raise FlashError(f"{port}: cannot open: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise FlashError(f"{port}: port busy; close the program that holds it (screen, minicom, "
                             "mpremote, the gateway's serial input) and try again") from None
        raise
    finally:
        os.close(fd)


_HINTS = (
    (("Failed to connect", "Wrong boot mode", "No serial data received", "download mode"),
     "the board is not in download mode: hold BOOT (IO0), press and release RESET/EN, release BOOT, "
     "then run the command again"),
    (("Permission denied",), "permission denied on the port: join the 'dialout' group and log in again"),
    (("Could not exclusively lock", "Resource temporarily unavailable", "Device or resource busy"),
     "port busy: another program holds it"),
    (("could not enter raw repl", "failed to access"), "the board did not answer mpremote: press RESET, "
     "check the port, and make sure MicroPython is flashed (sen flash)"),
)


def explain(output: str) -> str:
    for needles, hint in _HINTS:
        if any(n.lower() in output.lower() for n in needles):
            return hint
    return "see the tool's output above"


def show(steps: Sequence[Step]) -> str:
    return "\n".join(shlex.join(step) for step in steps)


def run_steps(steps: Sequence[Step]) -> None:
    """Run each step with its output passed through; the first failure raises FlashError."""
    for i, step in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] {shlex.join(step)}", flush=True)
        proc = subprocess.Popen(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen: list[str] = []
        if proc.stdout is not None:
            for line in proc.stdout:
                print(line, end="", flush=True)
                seen.append(line)
        if proc.wait() != 0:
            raise FlashError(f"step {i} failed (exit {proc.returncode}): {explain(''.join(seen[-40:]))}")
