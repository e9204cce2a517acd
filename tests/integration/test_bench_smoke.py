"""A smoke run of the benchmark (`python -m bench.run --quick`): every row, the JSON and the PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_table_json_and_plot(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("bare paho subscriber", "Sen gateway, end to end", "naive", "Sen / ceiling", "latency at",
                "gateway at", "spool replay", "serial board at 115200 baud", "firmware heap at -X heapsize=64K",
                "firmware, batch10", "backlog of", "Sen / bare subscriber (medians of 2; rounds ",
                "--workers 2 / --workers 1 (medians of 2"):
        assert row in result.stdout
    for run in data_backlog(tmp_path):
        assert run["confirmed"] == run["readings"], run
    data = json.loads((tmp_path / "latest.json").read_text())
    sen = next(r for r in data["throughput"] if r["kind"] == "sen")
    assert sen["confirmed"] == sen["readings"], "every published reading is confirmed in InfluxDB"
    assert data["replay"]["readings_per_s"] > 0
    paced = data["serial"]["paced"]
    assert 0 < paced["readings_per_s"] <= data["serial"]["line_limit_readings_per_s"] * 1.1, "the paced line is a limit"
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def data_backlog(out: Path) -> list[dict[str, object]]:
    data = json.loads((out / "latest.json").read_text())
    backlog: list[dict[str, object]] = data["backlog"] + data["backlog_workers"]  # the workers' pairs twice over
    return backlog
