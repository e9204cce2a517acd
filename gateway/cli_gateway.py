"""`sen gateway ...`: the gateway service's commands."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from gateway.cli_args import Handler, add_command

_LOGGER = logging.getLogger("sen")

DEFAULT_SPOOL = Path(".sen/gateway")
_RUN_EXAMPLE = ("sen gateway run --mqtt mqtt://127.0.0.1:1883 --influx http://127.0.0.1:8086 "
                "--database sen --spool /var/lib/sen")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    gateway = add_command(commands, "gateway", summary="the gateway service",
                          description="The gateway: MQTT in, InfluxDB out.", example=_RUN_EXAMPLE)
    gateway_commands = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    run = add_command(
        gateway_commands, "run", summary="receive readings over MQTT and write them to InfluxDB",
        description="Subscribe to every board's telemetry, validate it, keep it in the spool, "
                    "acknowledge it, and write it to InfluxDB in batches. Creates the database when missing. "
                    "Stops cleanly on Ctrl-C or SIGTERM.",
        example=_RUN_EXAMPLE,
    )
    run.add_argument("--mqtt", required=True, metavar="URL", help="broker, as mqtt://HOST:PORT")
    run.add_argument("--influx", required=True, metavar="URL", help="InfluxDB 1.x, as http://HOST:PORT")
    run.add_argument("--database", required=True, metavar="NAME", help="InfluxDB database to write to")
    run.add_argument("--spool", type=Path, default=DEFAULT_SPOOL, metavar="DIR",
                     help="where the gateway keeps its state (spool, dead letters)")
    run.add_argument("--client-id", default="sen-gateway", help="MQTT client id (keeps the broker session)")
    return {"gateway": _cmd_gateway}


def _cmd_gateway(args: argparse.Namespace) -> int:
    handlers = {"run": _cmd_run}
    return handlers[args.gateway_command](args)


def _cmd_run(args: argparse.Namespace) -> int:
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
