"""`sen fault`: a fault for the boards of a `sen sim` already running, from another terminal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hardware.errors import FaultPlanError

from gateway.cli.args import Handler, add_command

_FAULTS = ("cell_down, cell_up, modem_reset, modem_slow [ms=N], modem_garble [value=false], reg_denied, "
           "reg_allowed, sim_missing, sim_in (cellular boards); wifi_down [value=false], sensor sensor=NAME "
           "value=nack|stuck|range|null, clock_jump offset_ms=N, clear")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    fault = add_command(
        commands, "fault", summary="put a fault on running virtual boards: no coverage, a modem reset, a sensor...",
        description="Write a fault into the faults.json of boards a `sen sim` started (under its --state-dir), "
                    "which their firmware and simulated modem read within a quarter of a second: the same faults "
                    "as a fault plan's steps, now. FAULT: " + _FAULTS + ". Faults of a board's process or "
                    "link (power_cut, restart, unplug, replug, garbage, cut, stall, heal, partition) belong to "
                    "the sen sim running it: its --fault-plan.",
        example="sen fault cell_down --board sim-0000      # sen fault cell_up: coverage back\n"
                "  sen fault modem_slow ms=800               # every board under .sen/sim; ms=0: on time again\n"
                "  sen fault sensor sensor=sht31 value=nack\n  sen fault clear",
    )
    fault.add_argument("fault", metavar="FAULT", help="what goes wrong (above)")
    fault.add_argument("keys", nargs="*", metavar="KEY=VALUE", default=argparse.SUPPRESS,
                       help="the fault's own keys, as in a fault plan step; a value is JSON when it reads as "
                            "JSON (800, false, null), else text")
    fault.add_argument("--board", action="append", default=argparse.SUPPRESS, metavar="DEVICE",
                       help="a board's device id, e.g. sim-0000 (repeatable; default: every board)")
    fault.add_argument("--state-dir", type=Path, default=Path(".sen/sim"), metavar="DIR",
                       help="the sen sim's --state-dir, where each board keeps its flash")
    return {"fault": _cmd_fault}


def _keys(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise FaultPlanError(f"{pair!r} is not KEY=VALUE (a fault's own key, e.g. ms=800)")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def _cmd_fault(args: argparse.Namespace) -> int:
    from hardware.faults import inject

    for device, faults in inject(args.state_dir, getattr(args, "board", []), args.fault,
                                     _keys(getattr(args, "keys", []))).items():
        print(f"{device}: {args.fault} -> faults.json {json.dumps(faults) if faults else '(no faults)'}")
    return 0
