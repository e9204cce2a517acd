"""`sen gateway ...`, `sen status`, `sen tail`: the gateway service's commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.args import (Handler, add_command, non_negative_int, positive_float, positive_int, stop_on_signals,
                              workers)

if TYPE_CHECKING:
    from gateway.service.options import GatewayOptions

_LOGGER = logging.getLogger("sen")

_RUN_EXAMPLE = ("sen gateway run --mqtt mqtt://127.0.0.1:1883 --influx http://127.0.0.1:8086 "
                "--database sen --spool /var/lib/sen")
# flag -> GatewayOptions field (flags override the config file and the environment)
_FLAGS = {"mqtt": "mqtt_url", "influx": "influx_url", "database": "database",
          "client_id": "client_id", "shared_group": "shared_group", "batch_size": "batch_size",
          "writes_in_flight": "writes_in_flight",
          "flush_interval": "flush_interval_s", "spool_max_lines": "spool_max_lines",
          "stats_interval": "stats_interval_s", "influx_api": "influx_api",
          "reconnect_max": "reconnect_max_s", "watchdog": "watchdog_s", "bucket": "influx_bucket",
          "org": "influx_org", "baudrate": "serial_baudrate", "web": "web_port", "web_host": "web_host",
          "mqtt_ca": "mqtt_ca_file", "workers": "workers"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    gateway = add_command(commands, "gateway", summary="the gateway service",
                          description="The gateway: MQTT in, InfluxDB out.", example=_RUN_EXAMPLE)
    sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    run = add_command(
        sub, "run", summary="receive readings over MQTT and write them to InfluxDB",
        description="Subscribe to every board's telemetry, validate it, keep it in the spool, "
                    "acknowledge it, and write it to InfluxDB in batches. Creates the database when missing. "
                    "Settings: gateway/sen.sample.toml (every key), --config FILE, SEN_<SECTION>_<KEY> "
                    "variables, then these flags. Stops cleanly on Ctrl-C or SIGTERM.",
        example=_RUN_EXAMPLE,
    )
    run.set_defaults(_parser=run)
    run.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration (see gateway/sen.sample.toml)")
    run.add_argument("--mqtt", metavar="URL",
                     help="broker, as mqtt://HOST:PORT or mqtts://HOST:PORT for TLS (required without --config)")
    run.add_argument("--mqtt-ca", metavar="FILE",
                     help="with mqtts://: the CA certificate (PEM) the broker's must chain to, e.g. the ca.crt of "
                          "`sen broker tls` (default: mqtt.ca_file; none: the system's CAs)")
    run.add_argument("--influx", metavar="URL", help="InfluxDB, as http://HOST:PORT (required without --config)")
    run.add_argument("--database", metavar="NAME", help="InfluxDB database to write to (required without --config)")
    run.add_argument("--spool", type=Path, metavar="DIR",
                     help="where the gateway keeps its state (spool, dead letters, device registry); "
                          "default: spool.dir of the configuration")
    run.add_argument("--client-id", help="MQTT client id (keeps the broker session); default: mqtt.client_id")
    run.add_argument("--shared-group", metavar="NAME", help="split telemetry with other gateways via $share/NAME/...")
    run.add_argument("--influx-api", choices=["auto", "v1", "v2"], help="write API (auto: ask the server)")
    run.add_argument("--bucket", help="InfluxDB 2.x bucket (default: the database name)")
    run.add_argument("--org", help="InfluxDB 2.x organisation")
    run.add_argument("--batch-size", type=positive_int, metavar="N", help="lines per write at most")
    run.add_argument("--writes-in-flight", type=positive_int, metavar="N",
                     help="writes to InfluxDB at once, 1-4 (more than one only while a backlog waits)")
    run.add_argument("--flush-interval", type=positive_float, metavar="S", help="a batch waits at most S seconds")
    run.add_argument("--spool-max-lines", type=non_negative_int, metavar="N",
                     help="stop acking the broker while N lines wait (0: no bound)")
    run.add_argument("--stats-interval", type=positive_float, metavar="S", help="own counters every S seconds")
    run.add_argument("--reconnect-max", type=positive_int, metavar="S", help="reconnect and retry backoff cap")
    run.add_argument("--watchdog", type=positive_float, metavar="S", help="warn after S seconds without a message")
    run.add_argument("--serial", action="append", metavar="PATH_OR_GLOB",
                     help="also read boards on USB serial (SEN1 frames), e.g. '/dev/serial/by-id/*'; repeatable")
    run.add_argument("--baudrate", type=positive_int, metavar="BAUD", help="serial line speed")
    run.add_argument("--web", type=positive_int, metavar="PORT",
                     help="serve the web page (device table, a live chart per device) on PORT")
    run.add_argument("--web-host", metavar="ADDR", help="address the web page binds (default 127.0.0.1)")
    run.add_argument("--workers", type=workers, metavar="N",
                     help="receiving processes on a shared subscription, each with its own spool, under one "
                          "supervisor; a number or auto (default: service.workers, auto: 1 on up to 3 cores)")
    check = add_command(sub, "check-config", summary="check a configuration file",
                        description="Load FILE over the sample's defaults and the SEN_* variables; print the "
                                    "resulting settings (secrets hidden) or the key and line of the first error.",
                        example="sen gateway check-config /etc/sen/gateway.toml")
    check.add_argument("file", type=Path, metavar="FILE")
    status = add_command(commands, "status", summary="the device table: state, last seen, last reading, gaps",
                         description="Read the gateway's device registry (in its spool dir) and print one line "
                                     "per device. Works while the gateway runs.",
                         example="sen status --spool /var/lib/sen")
    status.add_argument("--spool", type=Path, metavar="DIR",
                        help="the gateway's spool dir; default: spool.dir of the sample configuration")
    tail = add_command(commands, "tail", summary="print readings live as boards publish them",
                       description="Subscribe to every board's telemetry (its own session; it takes nothing "
                                   "from the gateway) and print each reading. Ctrl-C stops.",
                       example="sen tail --mqtt mqtt://127.0.0.1:1883")
    tail.add_argument("--mqtt", required=True, metavar="URL", help="broker, as mqtt://HOST:PORT")
    tail.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    return {"gateway": _cmd_gateway, "status": _cmd_status, "tail": _cmd_tail}


def _cmd_gateway(args: argparse.Namespace) -> int:
    handlers = {"run": _cmd_run, "check-config": _cmd_check}
    return handlers[args.gateway_command](args)


def _cmd_run(args: argparse.Namespace) -> int:
    chosen = options(args)
    from gateway.service import main

    first = []
    if chosen.worker_count > 1:  # now: nothing is open and no thread runs yet (before the signals' relay)
        from gateway.service.forking import fork_first

        first = fork_first(chosen)
    return main.run(chosen, stop=stop_on_signals(_LOGGER), first=first)


def options(args: argparse.Namespace) -> GatewayOptions:
    """The options of `sen gateway run`: the sample's defaults < --config < SEN_* < flags."""
    from gateway.service import config

    if args.config is None:
        missing = [f"--{n}" for n in ("mqtt", "influx", "database") if getattr(args, n) is None]
        if missing:
            args._parser.error(f"the following arguments are required without --config: {', '.join(missing)}")
    flags: dict[str, object] = {field: getattr(args, flag) for flag, field in _FLAGS.items()}
    if args.serial:
        flags["serial_ports"] = tuple(args.serial)
    flags["spool_dir"] = args.spool
    return config.load(args.config, flags=flags)


def _cmd_check(args: argparse.Namespace) -> int:
    from gateway.service import config

    options = config.load(args.file)
    print(f"{args.file}: OK\n{options!r}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from gateway.ops.status import format_table, format_workers, read_devices, read_workers
    from gateway.service.sample import default

    spool = args.spool or Path(default("spool_dir", str))
    print(format_table(read_devices(spool)))
    workers = read_workers(spool)
    if workers is not None:
        print(f"\n{format_workers(workers)}")
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    from gateway.ops import tail

    return tail.run(args.mqtt, out=sys.stdout, stop=stop_on_signals(_LOGGER), duration_s=args.duration)
