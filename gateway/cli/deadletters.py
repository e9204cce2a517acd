"""`sen deadletters list|replay|purge`: what the gateway set aside, looked at, sent again or let go."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.args import Handler, add_command, positive_float, positive_int

_SPOOL_HELP = "the gateway's spool dir; default: spool.dir of the sample configuration"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    top = add_command(
        commands, "deadletters", summary="rejected messages and refused lines: list, replay, purge",
        description="The dead letters in the gateway's spool: messages it rejected (MQTT or serial) and lines "
                    "InfluxDB refused. Messages up to 4 KiB are kept whole, of larger ones the first 1 KiB; "
                    "the table keeps at most 10,000 rows and 30 days (the oldest go first, counted). "
                    "Every command works while the gateway runs.",
        example="sen deadletters list --spool /var/lib/sen --reason not_json")
    sub = top.add_subparsers(dest="deadletters_command", required=True, metavar="COMMAND")
    listing = add_command(
        sub, "list", summary="print the dead letters, oldest first",
        description="One entry per dead letter: id, time, source, reason, size, InfluxDB's or the decoder's "
                    "detail and a short printable preview of what was kept.",
        example="sen deadletters list --spool /var/lib/sen --limit 20")
    listing.add_argument("--reason", metavar="R", help="only this reason (e.g. not_json, influx_http_400)")
    listing.add_argument("--limit", type=positive_int, default=100, metavar="N", help="print at most N")
    replay = add_command(
        sub, "replay", summary="send dead letters again: refused lines to InfluxDB, messages to MQTT",
        description="Lines InfluxDB refused go back into the spool: the running gateway writes them within "
                    "its flush interval (or at its next start); fix their cause first (e.g. DROP MEASUREMENT or "
                    "drop the conflicting field). Messages from MQTT are republished to their topic with QoS1 "
                    "when --mqtt is given (the account must be allowed to publish there), so an upgraded gateway "
                    "decodes them. Serial messages and messages kept only as a sample cannot be replayed. "
                    "What is replayed leaves the dead letters.",
        example="sen deadletters replay --spool /var/lib/sen --reason influx_http_400")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=positive_int, nargs="+", action="extend", metavar="N", help="these ids")
    which.add_argument("--reason", metavar="R", help="every dead letter of this reason")
    which.add_argument("--all", action="store_true", help="every dead letter")
    replay.add_argument("--mqtt", metavar="URL", help="broker to republish messages to, as mqtt://HOST:PORT")
    replay.add_argument("--username", metavar="USER", help="MQTT user name for --mqtt")
    replay.add_argument("--password-file", type=Path, metavar="FILE", help="MQTT password, read from FILE")
    purge = add_command(
        sub, "purge", summary="delete dead letters",
        description="Delete the dead letters chosen, for good.",
        example="sen deadletters purge --spool /var/lib/sen --older-than 7")
    gone = purge.add_mutually_exclusive_group(required=True)
    gone.add_argument("--id", type=positive_int, nargs="+", action="extend", metavar="N", help="these ids")
    gone.add_argument("--reason", metavar="R", help="every dead letter of this reason")
    gone.add_argument("--older-than", type=positive_float, metavar="DAYS", help="those added over DAYS days ago")
    gone.add_argument("--all", action="store_true", help="every dead letter")
    for command in (listing, replay, purge):
        command.add_argument("--spool", type=Path, metavar="DIR", help=_SPOOL_HELP)
    return {"deadletters": _cmd_deadletters}


def _cmd_deadletters(args: argparse.Namespace) -> int:
    from gateway.ops import deadletters as ops
    from gateway.service.sample import default

    spool_dir = args.spool or Path(default("spool_dir", str))
    if args.deadletters_command == "list":
        return ops.list_letters(spool_dir, reason=args.reason, limit=args.limit, out=sys.stdout)
    if args.deadletters_command == "replay":
        broker = ops.Broker.from_flags(args.mqtt, username=args.username, password_file=args.password_file)
        return ops.replay(spool_dir, ops.Choice(ids=args.id, reason=args.reason, everything=args.all),
                          broker=broker, out=sys.stdout)
    return ops.purge(spool_dir, ops.Choice(ids=args.id, reason=args.reason, everything=args.all,
                                           older_than_days=args.older_than), out=sys.stdout)
