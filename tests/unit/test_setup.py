"""scripts/setup.sh is idempotent: run again on a set-up machine, it changes nothing and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_second_setup_run_does_nothing_and_says_so() -> None:
    venv = Path(sys.prefix)
    if venv.resolve() != (ROOT / ".venv").resolve() or not (venv / ".sen-setup-stamp").is_file():
        # Running setup.sh against another checkout's venv would re-point its editable install here.
        pytest.skip(f"the tests run from {venv}, not from this checkout's .venv made by scripts/setup.sh")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True,
                            env={**os.environ, "SEN_VENV": str(venv)}, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert "installing" not in result.stdout
