"""The Python side stays clean under ruff with the project's rule set (pyproject.toml, [tool.ruff]);
mypy --strict runs in test_typecheck.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                             "gateway", "ingest", "hardware", "bench", "tests"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
