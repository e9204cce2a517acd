"""The `sen` command line: `sen gateway run`, `sen sim`, `sen demo`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from hardware.sim import SimError
from ingest.errors import IngestError

from gateway.devstack import DevStackError
from gateway.errors import GatewayError

_LOGGER = logging.getLogger("sen")

_DEFAULT_SPOOL = Path(".sen/gateway")
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows every default."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _heapsize(text: str) -> str:
    digits = text[:-1] if text[-1:].upper() in ("K", "M") else text
    if not digits.isdigit() or int(digits) == 0:
        raise argparse.ArgumentTypeError(f"heap size must look like 64K, 2M or 65536, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sen",
        description="Sen: sensor readings from MicroPython boards to InfluxDB, losing none on the way.",
        epilog="examples:\n  sen demo --duration 30\n  sen gateway run --mqtt mqtt://127.0.0.1:1883 "
               "--influx http://127.0.0.1:8086 --database sen\n  sen sim --mqtt mqtt://127.0.0.1:1883 --boards 3",
        formatter_class=_Formatter,
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gateway = commands.add_parser(
        "gateway", help="the gateway service", formatter_class=_Formatter,
        description="The gateway: MQTT in, InfluxDB out.",
        epilog="example:\n  sen gateway run --mqtt mqtt://127.0.0.1:1883 --influx http://127.0.0.1:8086 --database sen",
    )
    gateway_commands = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    run = gateway_commands.add_parser(
        "run", formatter_class=_Formatter,
        help="receive readings over MQTT and write them to InfluxDB",
        description="Subscribe to every board's telemetry, validate it, keep it in the spool, "
                    "acknowledge it, and write it to InfluxDB in batches. Creates the database when missing. "
                    "Stops cleanly on Ctrl-C or SIGTERM.",
        epilog="example:\n  sen gateway run --mqtt mqtt://127.0.0.1:1883 --influx http://127.0.0.1:8086 "
               "--database sen --spool /var/lib/sen",
    )
    run.add_argument("--mqtt", required=True, metavar="URL", help="broker, as mqtt://HOST:PORT")
    run.add_argument("--influx", required=True, metavar="URL", help="InfluxDB 1.x, as http://HOST:PORT")
    run.add_argument("--database", required=True, metavar="NAME", help="InfluxDB database to write to")
    run.add_argument("--spool", type=Path, default=_DEFAULT_SPOOL, metavar="DIR",
                     help="where the gateway keeps its state (spool, dead letters)")
    run.add_argument("--client-id", default="sen-gateway", help="MQTT client id (keeps the broker session)")

    sim = commands.add_parser(
        "sim", formatter_class=_Formatter,
        help="run virtual boards: the real firmware on the MicroPython unix port",
        description="Start N virtual boards, each the real firmware on the MicroPython VM with a simulated "
                    "sensor. Each sends K readings and exits once they are acknowledged (or runs until "
                    "--duration or Ctrl-C when K is 0). Board state (config, boot counter, console log) "
                    "lives under --state-dir.",
        epilog="example:\n  sen sim --mqtt mqtt://127.0.0.1:1883 --boards 3 --readings 20 --interval-ms 100",
    )
    sim.add_argument("--mqtt", required=True, metavar="URL", help="broker, as mqtt://HOST:PORT")
    sim.add_argument("--boards", type=_positive_int, default=3, metavar="N", help="number of virtual boards")
    sim.add_argument("--readings", type=_non_negative_int, default=0, metavar="K",
                     help="readings per board, then exit (0: run until --duration or Ctrl-C)")
    sim.add_argument("--interval-ms", type=_positive_int, default=1000, metavar="MS", help="sampling interval")
    sim.add_argument("--duration", type=_positive_float, metavar="S", help="stop every board after S seconds")
    sim.add_argument("--batch-max", type=_positive_int, default=10, metavar="N",
                     help="readings per envelope at most (a reading waits at most 5 s for company)")
    sim.add_argument("--site", default="lab", help="site name in the topics")
    sim.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the simulated sensors")
    sim.add_argument("--heapsize", type=_heapsize, metavar="SIZE",
                     help="cap each board's MicroPython heap, e.g. 64K (as on a small ESP32)")
    sim.add_argument("--state-dir", type=Path, default=Path(".sen/sim"), metavar="DIR",
                     help="where each board keeps its flash (config.json, boot counter, console.log)")

    demo = commands.add_parser(
        "demo", formatter_class=_Formatter,
        help="everything at once: private broker and InfluxDB, the gateway and 3 virtual boards",
        description="Start a private Mosquitto and InfluxDB under .sen/demo, the gateway and 3 virtual boards, "
                    "and show a live table of what reaches InfluxDB. Ctrl-C (or --duration) stops everything.",
        epilog="example:\n  sen demo --duration 30",
    )
    demo.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    demo.add_argument("--boards", type=_positive_int, default=3, metavar="N", help="number of virtual boards")
    demo.add_argument("--interval-ms", type=_positive_int, default=1000, metavar="MS", help="sampling interval")
    demo.add_argument("--dir", type=Path, default=Path(".sen/demo"), help="where the demo keeps its data")
    return parser


def _cmd_gateway_run(args: argparse.Namespace) -> int:
    from gateway import service
    from gateway.options import GatewayOptions

    options = GatewayOptions(
        mqtt_url=args.mqtt, influx_url=args.influx, database=args.database,
        spool_dir=args.spool, client_id=args.client_id,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        _LOGGER.info("%s received: flushing and stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    return service.run(options, stop=stop)


def _cmd_sim(args: argparse.Namespace) -> int:
    from hardware import sim

    host, port = sim.parse_mqtt_url(args.mqtt)
    return sim.run(sim.SimOptions(
        broker_host=host, broker_port=port, boards=args.boards, readings=args.readings,
        interval_ms=args.interval_ms, batch_max=args.batch_max, duration_s=args.duration, site=args.site, seed=args.seed,
        heapsize=args.heapsize, state_dir=args.state_dir,
    ))


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    return demo.run(base_dir=args.dir, boards=args.boards, interval_ms=args.interval_ms,
                    duration_s=args.duration)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=_LOG_FORMAT, stream=sys.stderr)
    handlers = {"gateway": _cmd_gateway_run, "sim": _cmd_sim, "demo": _cmd_demo}
    try:
        return handlers[args.command](args)
    except (GatewayError, IngestError, SimError, DevStackError) as exc:
        # Our own errors are about the input or the environment: one clear line, no traceback.
        print(f"sen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
