"""`sen sim ...`: commands that deal with boards, real or virtual."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli_args import Handler, add_command, heapsize, non_negative_int, positive_float, positive_int


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    sim = add_command(
        commands, "sim", summary="run virtual boards: the real firmware on the MicroPython unix port",
        description="Start N virtual boards, each the real firmware on the MicroPython VM with a simulated "
                    "sensor. Each sends K readings and exits once they are acknowledged (or runs until "
                    "--duration or Ctrl-C when K is 0). Board state (config, boot counter, console log) "
                    "lives under --state-dir.",
        example="sen sim --mqtt mqtt://127.0.0.1:1883 --boards 3 --readings 20 --interval-ms 100",
    )
    sim.add_argument("--mqtt", required=True, metavar="URL", help="broker, as mqtt://HOST:PORT")
    sim.add_argument("--boards", type=positive_int, default=3, metavar="N", help="number of virtual boards")
    sim.add_argument("--readings", type=non_negative_int, default=0, metavar="K",
                     help="readings per board, then exit (0: run until --duration or Ctrl-C)")
    sim.add_argument("--interval-ms", type=positive_int, default=1000, metavar="MS", help="sampling interval")
    sim.add_argument("--duration", type=positive_float, metavar="S", help="stop every board after S seconds")
    sim.add_argument("--batch-max", type=positive_int, default=10, metavar="N",
                     help="readings per envelope at most (a reading waits at most 5 s for company)")
    sim.add_argument("--site", default="lab", help="site name in the topics")
    sim.add_argument("--seed", type=non_negative_int, default=0, help="seed of the simulated sensors")
    sim.add_argument("--heapsize", type=heapsize, metavar="SIZE",
                     help="cap each board's MicroPython heap, e.g. 64K (as on a small ESP32)")
    sim.add_argument("--state-dir", type=Path, default=Path(".sen/sim"), metavar="DIR",
                     help="where each board keeps its flash (config.json, boot counter, console.log)")
    return {"sim": _cmd_sim}


def _cmd_sim(args: argparse.Namespace) -> int:
    from hardware import sim

    host, port = sim.parse_mqtt_url(args.mqtt)
    return sim.run(sim.SimOptions(
        broker_host=host, broker_port=port, boards=args.boards, readings=args.readings,
        interval_ms=args.interval_ms, batch_max=args.batch_max, duration_s=args.duration, site=args.site,
        seed=args.seed, heapsize=args.heapsize, state_dir=args.state_dir,
    ))
