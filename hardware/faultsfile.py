"""A board's ``faults.json``: the faults a virtual board's firmware (its sim HAL,
hardware/simdev/simdev.py) and its simulated modem (hardware/modem_sim.py) poll.

    board = FaultsFile(Path(".sen/sim/sim-0000"))      # a board's flash directory
    board.set_faults(cell="down"); board.sensor_fault("sht31", "nack"); board.clear_faults()

:class:`hardware.vboard.VirtualBoard` is one (with the process and links besides); ``sen fault``
makes one per board of a running ``sen sim``, which sees the change within its next poll.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hardware.errors import VirtualBoardError

FAULTS_FILE = "faults.json"
SENSOR_FAULTS = ("nack", "stuck", "range")


class FaultsFile:
    def __init__(self, flash_dir: Path) -> None:
        self.flash_dir = flash_dir.resolve()

    def faults(self) -> dict[str, Any]:
        try:
            current = json.loads((self.flash_dir / FAULTS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return current if isinstance(current, dict) else {}

    def set_faults(self, **changes: Any) -> None:
        """Merge into faults.json; a value of None removes the key. Written atomically."""
        current = self.faults()
        for key, value in changes.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        tmp = self.flash_dir / (FAULTS_FILE + ".tmp")
        tmp.write_text(json.dumps(current))
        os.replace(tmp, self.flash_dir / FAULTS_FILE)

    def sensor_fault(self, sensor: str, fault: str | None) -> None:
        if fault is not None and fault not in SENSOR_FAULTS:
            raise VirtualBoardError(f"sensor fault must be one of {', '.join(SENSOR_FAULTS)} (got {fault!r})")
        self.set_faults(**{sensor: fault})

    def wifi_down(self, down: bool = True) -> None:
        self.set_faults(wifi="down" if down else None)

    def clock_jump(self, offset_ms: int) -> None:
        """Shift the board's wall clock by offset_ms (``clock_offset_ms`` in faults.json)."""
        self.set_faults(clock_offset_ms=offset_ms or None)

    def clear_faults(self) -> None:
        (self.flash_dir / FAULTS_FILE).unlink(missing_ok=True)
