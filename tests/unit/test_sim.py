"""The simulator launcher: broker URLs, board configs, argument checks (no boards started)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware.sim import SimError, SimOptions, board_config, run


def test_board_config_is_what_the_firmware_reads(tmp_path: Path) -> None:
    options = SimOptions(broker_host="127.0.0.1", broker_port=1884, boards=2, readings=5, site="farm-1", seed=7)
    first, second = (board_config(options, i) for i in range(2))
    assert first["device_id"] == "sim-0000" and second["device_id"] == "sim-0001"
    assert first["broker"] == {"host": "127.0.0.1", "port": 1884, "keepalive": 30}
    assert first["max_readings"] == 5 and first["site"] == "farm-1"
    assert first["sim"] != second["sim"], "each board gets its own sensor seed"
    json.dumps(first)  # must be plain JSON


@pytest.mark.parametrize("kwargs", [{"boards": 0}, {"readings": -1}, {"interval_ms": 0}])
def test_run_refuses_bad_options(kwargs: dict[str, int], tmp_path: Path) -> None:
    options = SimOptions(broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SimError):
        run(options)
