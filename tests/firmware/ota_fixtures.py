"""Shared OTA fixtures (tests/unit/test_ota_bundle.py and tests/firmware/test_fw_ota*.py): a
signing key pair, and a small firmware folder to bundle: the loader (never shipped), main.py,
three lib files (one empty) and a file that is not Python (never shipped either)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.ops import ota, ota_keys

SMALL_FILES = ["lib/app.py", "lib/empty.py", "lib/log.py", "main.py"]  # what a bundle of it holds


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    ota_keys.keygen(out)
    return out


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("firmware")
    (root / "lib").mkdir()
    (root / "boot.py").write_text("import gc\ngc.collect()\n")
    (root / "main.py").write_text("import app\n")
    (root / "lib" / "app.py").write_text("".join(f"X{i} = {i * 7919}\n" for i in range(300)))
    (root / "lib" / "empty.py").write_text("")
    (root / "lib" / "log.py").write_text("def line(s):\n    print(s)\n" * 20)
    (root / "README.md").write_text("not shipped\n")
    return root


def bundle(keys: Path, firmware: Path, out: Path, **over: Any) -> bytes:
    """A signed bundle of FIRMWARE (version 1.5.0 for the sim profile unless told), its bytes."""
    args: dict[str, Any] = {"version": "1.5.0", "boards": ["sim"], "firmware_dir": firmware}
    args.update(over)
    ota.build(ota_keys.load_key(keys / "ota.key"), out=out, **args)
    return out.read_bytes()
