"""The `sen` command line: a thin layer over the rooms that do the work.

Each module here registers its commands and imports the code behind a command only when that
command runs (``sen gateway run`` loads the service, never the simulator or the dev servers):
``service`` (the gateway service, ``status``, ``tail``), ``boards`` (real and virtual boards),
``faults`` (a fault on running virtual boards),
``ops`` (broker accounts and TLS, the web page, the systemd service); ``demo`` is here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hardware.errors import HardwareError
from ingest.errors import IngestError

from gateway.cli import boards, deadletters, faults, ops, ota, service
from gateway.cli.args import Formatter, Handler, add_command, positive_float, positive_int
from gateway.errors import GatewayError

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="sen",
        description="Sen: sensor readings from MicroPython boards to InfluxDB, losing none on the way.",
        epilog="examples:\n  sen demo --duration 30\n  sen gateway run --mqtt mqtt://127.0.0.1:1883 "
               "--influx http://127.0.0.1:8086 --database sen\n  sen sim --mqtt mqtt://127.0.0.1:1883 --boards 3",
        formatter_class=Formatter,
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers = {**service.register(commands), **boards.register(commands), **ops.register(commands),
                **deadletters.register(commands), **ota.register(commands), **faults.register(commands)}

    demo = add_command(
        commands, "demo", summary="everything at once: private broker and InfluxDB, the gateway and 3 virtual boards",
        description="Start a private Mosquitto and InfluxDB under .sen/demo, the gateway and 3 virtual boards, "
                    "and show a live table of what reaches InfluxDB. Ctrl-C (or --duration) stops everything.",
        example="sen demo --duration 30",
    )
    demo.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    demo.add_argument("--boards", type=positive_int, default=3, metavar="N", help="number of virtual boards")
    demo.add_argument("--interval-ms", type=positive_int, default=1000, metavar="MS", help="sampling interval")
    demo.add_argument("--dir", type=Path, default=Path(".sen/demo"), help="where the demo keeps its data")
    handlers["demo"] = _cmd_demo
    return parser, handlers


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    return demo.run(base_dir=args.dir, boards=args.boards, interval_ms=args.interval_ms,
                    duration_s=args.duration)


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=_LOG_FORMAT, stream=sys.stderr)
    try:
        return handlers[args.command](args)
    except (GatewayError, IngestError, HardwareError) as exc:
        # Our own errors (one root per package) are about the input or the environment:
        # one clear line, no traceback.
        print(f"sen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
