"""Fault plans: timed faults for virtual boards, from a JSON file (`sen sim --fault-plan FILE`).

    [{"at_s": 2,  "fault": "unplug",    "board": 0},
     {"at_s": 4,  "fault": "replug",    "board": 0},
     {"at_s": 5,  "fault": "garbage",   "board": "all", "bytes": 300},
     {"at_s": 6,  "fault": "sensor",    "board": 1, "sensor": "sht31", "value": "nack"},
     {"at_s": 9,  "fault": "sensor",    "board": 1, "sensor": "sht31", "value": null},
     {"at_s": 10, "fault": "power_cut", "board": 1},
     {"at_s": 12, "fault": "partition"}, {"at_s": 15, "fault": "heal"},
     {"at_s": 16, "fault": "cell_down"}, {"at_s": 20, "fault": "cell_up"}, {"at_s": 25, "fault": "modem_reset"}]

``board`` is an index into the started boards (0 = the first), or ``"all"`` (the default).
Tests call the same methods on :class:`hardware.vboard.VirtualBoard` directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.errors import FaultPlanError as FaultPlanError  # re-exported: callers import it from here
from hardware.vboard import SENSOR_FAULTS, VirtualBoard

_LOGGER = logging.getLogger(__name__)


def _arg(step: dict[str, Any], key: str) -> Any:
    return step[key]


ACTIONS: dict[str, Callable[[VirtualBoard, dict[str, Any]], None]] = {
    "power_cut": lambda b, s: b.power_cut(),
    "restart": lambda b, s: b.restart(),
    "unplug": lambda b, s: b.unplug(),
    "replug": lambda b, s: (b.replug(), None)[1],
    "garbage": lambda b, s: (b.garbage(int(s.get("bytes", 256)), seed=s.get("seed")), None)[1],
    "cut": lambda b, s: b.link_cut(),
    "stall": lambda b, s: b.link_stall(),
    "heal": lambda b, s: b.link_heal(),
    "partition": lambda b, s: b.link_cut(),
    "wifi_down": lambda b, s: b.wifi_down(bool(s.get("value", True))),
    "sensor": lambda b, s: b.sensor_fault(_arg(s, "sensor"), s.get("value")),
    "clock_jump": lambda b, s: b.clock_jump(int(_arg(s, "offset_ms"))),
    "clear": lambda b, s: b.clear_faults(),
    # cellular boards (sen sim --cellular): the simulated modem reads these from faults.json
    "cell_down": lambda b, s: b.set_faults(cell="down"),
    "cell_up": lambda b, s: b.set_faults(cell=None),
    "modem_reset": lambda b, s: b.set_faults(modem_reset=int(b.faults().get("modem_reset", 0)) + 1),
}
_NEEDS = {"sensor": ("sensor",), "clock_jump": ("offset_ms",)}


@dataclass(frozen=True)
class Step:
    at_s: float
    fault: str
    board: int | None  # None: every board
    args: dict[str, Any]


@dataclass
class FaultPlan:
    steps: list[Step]
    source: str = "<plan>"

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise FaultPlanError(f"{path}: cannot read the fault plan: {err}") from None
        return cls.parse(doc, str(path))

    @classmethod
    def parse(cls, doc: object, source: str = "<plan>") -> FaultPlan:
        if not isinstance(doc, list):
            raise FaultPlanError(f"{source}: a fault plan is a JSON list of steps")
        steps = []
        for i, raw in enumerate(doc):
            where = f"{source}: step {i}"
            if not isinstance(raw, dict):
                raise FaultPlanError(f"{where}: must be an object")
            fault = raw.get("fault")
            if fault not in ACTIONS:
                raise FaultPlanError(f"{where}: key 'fault' must be one of {', '.join(ACTIONS)} (got {fault!r})")
            at_s = raw.get("at_s")
            if isinstance(at_s, bool) or not isinstance(at_s, (int, float)) or at_s < 0:
                raise FaultPlanError(f"{where}: key 'at_s' must be seconds >= 0 (got {at_s!r})")
            board = raw.get("board", "all")
            if board != "all" and (isinstance(board, bool) or not isinstance(board, int) or board < 0):
                raise FaultPlanError(f"{where}: key 'board' must be an index >= 0 or \"all\" (got {board!r})")
            for key in _NEEDS.get(fault, ()):
                if key not in raw:
                    raise FaultPlanError(f"{where}: key '{key}' is missing for fault {fault!r}")
            if fault == "sensor" and raw.get("value") not in (*SENSOR_FAULTS, None):
                raise FaultPlanError(f"{where}: key 'value' must be one of {', '.join(SENSOR_FAULTS)} or null")
            args = {k: v for k, v in raw.items() if k not in ("at_s", "fault", "board")}
            steps.append(Step(float(at_s), fault, None if board == "all" else board, args))
        return cls(sorted(steps, key=lambda s: s.at_s), source)

    def start(self, boards: Sequence[VirtualBoard]) -> RunningPlan:
        for step in self.steps:
            if step.board is not None and step.board >= len(boards):
                raise FaultPlanError(f"{self.source}: board {step.board} does not exist "
                                     f"({len(boards)} started)")
        return RunningPlan(list(self.steps), list(boards))


@dataclass
class RunningPlan:
    pending: list[Step]
    boards: list[VirtualBoard]

    def due(self, elapsed_s: float) -> None:
        """Apply every step whose time has come; a failing step is logged, never fatal."""
        while self.pending and self.pending[0].at_s <= elapsed_s:
            step = self.pending.pop(0)
            targets = self.boards if step.board is None else [self.boards[step.board]]
            for board in targets:
                _LOGGER.info("fault at %.1f s: %s on %s %s", elapsed_s, step.fault, board.device, step.args)
                try:
                    ACTIONS[step.fault](board, step.args)
                except (RuntimeError, OSError, ValueError) as err:
                    _LOGGER.error("fault %s on %s failed: %s", step.fault, board.device, err)
