"""Fault plans: timed faults for virtual boards, from a JSON file (`sen sim --fault-plan FILE`).

    [{"at_s": 2,  "fault": "unplug",    "board": 0},
     {"at_s": 4,  "fault": "replug",    "board": 0},
     {"at_s": 5,  "fault": "garbage",   "board": "all", "bytes": 300},
     {"at_s": 6,  "fault": "sensor",    "board": 1, "sensor": "sht31", "value": "nack"},
     {"at_s": 9,  "fault": "sensor",    "board": 1, "sensor": "sht31", "value": null},
     {"at_s": 10, "fault": "power_cut", "board": 1},
     {"at_s": 12, "fault": "partition"}, {"at_s": 15, "fault": "heal"},
     {"at_s": 16, "fault": "cell_down"}, {"at_s": 20, "fault": "cell_up"}, {"at_s": 25, "fault": "modem_reset"},
     {"at_s": 30, "fault": "modem_slow", "ms": 800}, {"at_s": 34, "fault": "modem_slow", "ms": 0},
     {"at_s": 35, "fault": "modem_garble"}, {"at_s": 38, "fault": "modem_garble", "value": false},
     {"at_s": 40, "fault": "reg_denied"}, {"at_s": 45, "fault": "reg_allowed"},
     {"at_s": 50, "fault": "sim_missing"}, {"at_s": 55, "fault": "sim_in"}]

``board`` is an index into the started boards (0 = the first), or ``"all"`` (the default).
Tests call the same methods on :class:`hardware.vboard.VirtualBoard` directly. The faults of
``FILE_ACTIONS`` only write the board's ``faults.json`` (:mod:`hardware.faultsfile`), so
``sen fault`` applies them to the boards of a ``sen sim`` already running; ``BOARD_ACTIONS``
need that ``sen sim``'s own processes and links (a fault plan).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.errors import FaultPlanError as FaultPlanError  # re-exported: callers import it from here
from hardware.faultsfile import SENSOR_FAULTS, FaultsFile
from hardware.vboard import VirtualBoard

_LOGGER = logging.getLogger(__name__)


def _arg(step: dict[str, Any], key: str) -> Any:
    return step[key]


_SLOW_MS = 2000  # modem_slow without its ms
_SLOW_MAX_MS = 60_000  # a modem this late on every answer is as good as gone: cell_down says that


def _whole(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


# Faults that need the running sen sim: its board processes, serial links and TCP fault proxies
BOARD_ACTIONS: dict[str, Callable[[VirtualBoard, dict[str, Any]], None]] = {
    "power_cut": lambda b, s: b.power_cut(),
    "restart": lambda b, s: b.restart(),
    "unplug": lambda b, s: b.unplug(),
    "replug": lambda b, s: (b.replug(), None)[1],
    "garbage": lambda b, s: (b.garbage(int(s.get("bytes", 256)), seed=s.get("seed")), None)[1],
    "cut": lambda b, s: b.link_cut(),
    "stall": lambda b, s: b.link_stall(),
    "heal": lambda b, s: b.link_heal(),
    "partition": lambda b, s: b.link_cut(),
}
# Faults written to the board's faults.json, which its firmware and its simulated modem poll:
# also from another process (`sen fault`)
FILE_ACTIONS: dict[str, Callable[[FaultsFile, dict[str, Any]], None]] = {
    "wifi_down": lambda b, s: b.wifi_down(bool(s.get("value", True))),
    "sensor": lambda b, s: b.sensor_fault(_arg(s, "sensor"), s.get("value")),
    "clock_jump": lambda b, s: b.clock_jump(int(_arg(s, "offset_ms"))),
    "clear": lambda b, s: b.clear_faults(),
    # cellular boards (sen sim --cellular): the simulated modem's faults (hardware/modem_sim.py)
    "cell_down": lambda b, s: b.set_faults(cell="down"),
    "cell_up": lambda b, s: b.set_faults(cell=None),
    "modem_reset": lambda b, s: b.set_faults(modem_reset=int(b.faults().get("modem_reset", 0)) + 1),
    "sim_missing": lambda b, s: b.set_faults(sim="missing"),
    "sim_in": lambda b, s: b.set_faults(sim=None),
    "reg_denied": lambda b, s: b.set_faults(reg="denied"),
    "reg_allowed": lambda b, s: b.set_faults(reg=None),
    "modem_slow": lambda b, s: b.set_faults(modem_slow_ms=int(s.get("ms", _SLOW_MS)) or None),
    "modem_garble": lambda b, s: b.set_faults(modem_garble=bool(s.get("value", True)) or None),
}
ACTIONS: dict[str, Callable[[VirtualBoard, dict[str, Any]], None]] = {**BOARD_ACTIONS, **FILE_ACTIONS}
_NEEDS = {"sensor": ("sensor",), "clock_jump": ("offset_ms",)}
_TAKES = {"sensor": {"sensor", "value"}, "clock_jump": {"offset_ms"}, "wifi_down": {"value"},
          "modem_slow": {"ms"}, "modem_garble": {"value"}, "garbage": {"bytes", "seed"}}  # a step's own keys


def _check_args(where: str, fault: str, raw: dict[str, Any]) -> None:
    """A step's own keys, by its fault: what its action would choke on, refused here instead."""
    for key in sorted(set(raw) - {"at_s", "fault", "board"} - _TAKES.get(fault, set())):
        takes = ", ".join(sorted(_TAKES.get(fault, ()))) or "none"
        raise FaultPlanError(f"{where}: key {key!r} is not one of fault {fault!r}'s (its keys: {takes})")
    for key in _NEEDS.get(fault, ()):
        if key not in raw:
            raise FaultPlanError(f"{where}: key '{key}' is missing for fault {fault!r}")
    if fault == "sensor" and raw.get("value") not in (*SENSOR_FAULTS, None):
        raise FaultPlanError(f"{where}: key 'value' must be one of {', '.join(SENSOR_FAULTS)} or null")
    if fault in ("wifi_down", "modem_garble") and not isinstance(raw.get("value", True), bool):
        raise FaultPlanError(f"{where}: key 'value' must be true or false (got {raw.get('value')!r})")
    if fault == "modem_slow" and not _whole(raw.get("ms", _SLOW_MS), 0, _SLOW_MAX_MS):
        raise FaultPlanError(f"{where}: key 'ms' must be milliseconds 0..{_SLOW_MAX_MS} "
                             f"(0: answers on time again; got {raw.get('ms')!r})")
    for key in ("offset_ms", "bytes", "seed"):
        if key in raw and not _whole(raw[key], -2**62, 2**62):
            raise FaultPlanError(f"{where}: key '{key}' must be a whole number (got {raw[key]!r})")


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
            _check_args(where, fault, raw)
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


def inject(state_dir: Path, devices: Sequence[str], fault: str, args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``sen fault``: FAULT with ARGS (a fault plan step's own keys, checked as in a plan) written
    now into the faults.json of the boards DEVICES of a ``sen sim --state-dir STATE_DIR`` (every
    board there when DEVICES is empty) -> each board's faults.json after the change."""
    if fault in BOARD_ACTIONS:
        raise FaultPlanError(f"{fault} needs the sen sim running the boards (their processes and links): "
                             f"give it in that sen sim's --fault-plan")
    if fault not in FILE_ACTIONS:
        raise FaultPlanError(f"the fault must be one of {', '.join(FILE_ACTIONS)} (got {fault!r})")
    _check_args(fault, fault, args)
    for key in ("at_s", "board"):
        if key in args:
            raise FaultPlanError(f"{fault}: {key} is not a key here (now, on the boards --board names)")
    boards = sorted(p.parent.name for p in state_dir.glob("*/config.json"))
    if not boards:
        raise FaultPlanError(f"no boards under {state_dir} (sen sim's --state-dir)")
    unknown = [d for d in devices if d not in boards]
    if unknown:
        raise FaultPlanError(f"no board {', '.join(unknown)} under {state_dir} (boards: {', '.join(boards)})")
    done = {}
    for device in devices or boards:
        board = FaultsFile(state_dir / device)
        FILE_ACTIONS[fault](board, args)
        done[device] = board.faults()
    return done
