"""`sen broker ...`, `sen web`, `sen install-service`: putting Sen on a Pi or a server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.cli.args import Handler, add_command, positive_int, stop_on_signals

DEFAULT_BROKER_DIR = Path("/etc/mosquitto/sen")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    _register_broker(commands)
    web = add_command(
        commands, "web", summary="a small web page: the device table and a live chart per device",
        description="Serve the built-in page (no Grafana needed): devices from InfluxDB (and from the gateway's "
                    "registry with --spool: state, gaps), a chart per device refreshed every 5 s. No login: it "
                    "binds 127.0.0.1 unless --host says otherwise. Ctrl-C stops.",
        example="sen web --influx http://127.0.0.1:8086 --database sen --port 8080 --spool /var/lib/sen")
    web.add_argument("--influx", required=True, metavar="URL", help="InfluxDB, as http://HOST:PORT")
    web.add_argument("--database", required=True, metavar="NAME",
                     help="database (InfluxDB 2.x: the DBRP-mapped name, usually the bucket)")
    web.add_argument("--port", type=positive_int, default=8080, metavar="P", help="TCP port to serve on")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    web.add_argument("--spool", type=Path, metavar="DIR", help="the gateway's spool dir (device registry)")
    web.add_argument("--token-file", type=Path, metavar="FILE", help="InfluxDB 2.x API token, read from FILE")
    install = add_command(
        commands, "install-service", summary="install the gateway as a systemd service (Raspberry Pi OS)",
        description="Write /etc/sen/gateway.toml (kept if present), the systemd unit and /var/lib/sen under "
                    "--root; on / also create the 'sen' user and reload systemd (--enable starts it). "
                    "32-bit Pi OS gets InfluxDB 1.x settings (InfluxDB 2.x needs 64-bit).",
        example="sudo sen install-service --enable   |   sen install-service --root /tmp/stage --arch 32 --dry-run")
    install.add_argument("--root", type=Path, default=Path("/"), metavar="DIR", help="install under DIR")
    install.add_argument("--arch", choices=("auto", "32", "64"), default="auto", help="Pi OS word size")
    install.add_argument("--sen", metavar="PATH", help="the sen command the service runs (default: this one)")
    install.add_argument("--user", default="sen",
                         help="system user the service runs as (the unit's User= and Group=; created on /)")
    install.add_argument("--enable", action="store_true", help="systemctl enable --now (only with --root /)")
    install.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    return {"broker": _cmd_broker, "web": _cmd_web, "install-service": _cmd_install}


def _register_broker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = add_command(commands, "broker", summary="secure Mosquitto: per-device accounts, ACL, TLS",
                         description="Accounts, ACL and certificates for a Mosquitto 2 broker.",
                         example="sen broker add-device --site farm --device esp32-a1b2c3")
    sub = broker.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")
    device = add_command(
        sub, "add-device", summary="an account that may publish only as this device",
        description="Add SITE.DEVICE to the password file and ACL in --dir: it may write only "
                    "sen/v1/SITE/DEVICE/telemetry|status and read only its own ack and cmd. The password goes "
                    "to DIR/secrets/SITE.DEVICE.password (0600) and is printed with the firmware's config keys. "
                    "Reload Mosquitto afterwards (systemctl reload mosquitto).",
        example="sen broker add-device --dir /etc/mosquitto/sen --site farm --device esp32-a1b2c3")
    device.add_argument("--site", required=True, help="site name ([a-z0-9_-]{1,32})")
    device.add_argument("--device", required=True, help="device id ([a-z0-9_-]{1,32})")
    gateway = add_command(
        sub, "add-gateway", summary="the gateway's account: reads all telemetry/status/ack, writes ack/cmd",
        description="Add the gateway's account; its password goes to DIR/secrets/USER.password, which is "
                    "the gateway's mqtt.password_file.",
        example="sen broker add-gateway --dir /etc/mosquitto/sen")
    gateway.add_argument("--user", default="sen-gateway", help="the gateway's MQTT user name")
    for cmd in (device, gateway):
        cmd.add_argument("--dir", type=Path, default=DEFAULT_BROKER_DIR, help="the broker directory")
        cmd.add_argument("--rotate", action="store_true", help="replace an existing account's password")
    tls = add_command(
        sub, "tls", summary="a local CA and the broker's TLS certificate (openssl)",
        description="Make a CA (kept if OUT has one) and a server certificate for every --host; print the "
                    "Mosquitto lines for a TLS listener. Give ca.crt to the gateway and the boards.",
        example="sen broker tls --out /etc/mosquitto/sen/tls --host raspberrypi.local --host 192.168.1.10")
    tls.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the keys and certificates go")
    tls.add_argument("--host", action="append", required=True, help="a name or address clients connect to")
    tls.add_argument("--days", type=positive_int, default=825, help="certificate lifetime")
    tls.add_argument("--new-ca", action="store_true", help="make a new CA even if OUT has one")
    tls.add_argument("--ca-key", type=Path, metavar="FILE",
                     help="the CA's private key where you keep it (default OUT/ca.key; root's, never the broker's)")
    conf = add_command(
        sub, "conf", summary="write the Mosquitto config that turns all this on",
        description="Write DIR/sen.conf: no anonymous clients, the password file, the ACL, client ids bound to "
                    "accounts (use_username_as_clientid), packets of at most 16 KiB, and the listeners: a plain "
                    "one; with --tls-dir a TLS one, and plain MQTT on 127.0.0.1 only (for a gateway on this "
                    "machine; --no-plain leaves it out). Include it from /etc/mosquitto/conf.d/. Run it before "
                    "add-device: the firmware keys it prints (port, tls) come from this file.",
        example="sen broker conf --dir /etc/mosquitto/sen --tls-dir /etc/mosquitto/sen/tls")
    conf.add_argument("--dir", type=Path, default=DEFAULT_BROKER_DIR, help="the broker directory")
    conf.add_argument("--tls-dir", type=Path, metavar="DIR", help="output of `sen broker tls`")
    conf.add_argument("--port", type=positive_int, default=1883,
                      help="plain MQTT listener (with --tls-dir: on 127.0.0.1 only)")
    conf.add_argument("--tls-port", type=positive_int, default=8883, help="TLS listener")
    conf.add_argument("--bind", default="", metavar="ADDR",
                      help="address of the listener boards connect to (default: every interface)")
    conf.add_argument("--no-plain", action="store_true", help="with --tls-dir: no plain listener at all")


def _cmd_broker(args: argparse.Namespace) -> int:
    from gateway.ops import broker_accounts as bs

    if args.broker_command == "tls":
        from gateway.ops.broker_tls import make_tls

        files = make_tls(args.out, hosts=args.host, days=args.days, new_ca=args.new_ca, ca_key=args.ca_key)
        print("\n".join(f"{name}: {path}" for name, path in files.items()))
        print(f"next: sen broker conf --tls-dir {args.out} (the TLS listener, plain MQTT on 127.0.0.1 only); "
              f"the broker's user reads {files['server.key']} (chgrp mosquitto, 0640); {files['ca.key']} "
              "stays root's (0600), best kept off the broker (--ca-key FILE next time)")
        return 0
    if args.broker_command == "conf":
        if args.no_plain and args.tls_dir is None:
            raise bs.BrokerSecurityError("--no-plain needs --tls-dir: without TLS the plain listener is the only one")
        text = bs.conf_text(args.dir.resolve(), port=args.port, tls_dir=args.tls_dir and args.tls_dir.resolve(),
                            tls_port=args.tls_port, bind=args.bind, plain=not args.no_plain)
        args.dir.mkdir(parents=True, exist_ok=True)
        (args.dir / bs.CONF).write_text(text, encoding="utf-8")
        print(f"wrote {args.dir / bs.CONF}:\n{text}", end="")
        return 0
    store = bs.BrokerDir(args.dir)
    if args.broker_command == "add-gateway":
        account = bs.Account(user=args.user, kind="gateway")
    else:
        account = bs.Account(user=bs.device_user(args.site, args.device), kind="device",
                             site=args.site, device=args.device)
    password = store.add(account, rotate=args.rotate)
    secret = store.secret_path(account.user)
    print(f"account {account.user} ({account.kind}) in {args.dir}; password in {secret}")
    listeners = bs.read_listeners(args.dir / bs.CONF) if (args.dir / bs.CONF).exists() else []
    if not listeners:
        print(f"(no {args.dir / bs.CONF} yet: the port and tls below assume plain MQTT on 1883; "
              "run `sen broker conf` first to have them match the broker)")
    if account.kind == "device":
        board = bs.board_listener(args.dir) or bs.Listener(port=1883, bind="", tls=False)
        keys: dict[str, object] = {"user": account.user, "password": password, "port": board.port,
                                   "tls": board.tls}
        if board.tls:
            keys["ca"] = bs.TLS_CA_DER
        print("firmware config.json keys (the broker binds the client id to the user name):\n"
              + json.dumps({"broker": keys}, indent=1))
        if board.tls:
            print(f"copy {bs.TLS_CA_DER} (beside ca.crt, from `sen broker tls`) to the board's flash; "
                  "broker.host must be a --host of the broker's certificate")
    else:
        # The broker takes the user name as the client id; the gateway's client_id must say the same.
        print(f"gateway.toml [mqtt]: username = \"{account.user}\", client_id = \"{account.user}\", "
              f"password_file = \"{secret}\" (copied where the gateway's user can read it)")
        for listener in listeners:
            if listener.tls:
                print(f"  over TLS: url = \"mqtts://HOST:{listener.port}\", ca_file = \"CA.crt\" "
                      "(HOST a --host of the broker's certificate, CA.crt the ca.crt of `sen broker tls`)")
            elif listener.bind == bs.LOCALHOST:
                print(f"  on the broker's machine: url = \"mqtt://127.0.0.1:{listener.port}\"")
            else:
                print(f"  url = \"mqtt://HOST:{listener.port}\"")
    print("then reload Mosquitto: systemctl reload mosquitto")
    return 0


def _cmd_web(args: argparse.Namespace) -> int:
    from gateway.web import server as web

    token = args.token_file.read_text(encoding="utf-8").strip() if args.token_file else None
    devices = web.registry_devices(args.spool) if args.spool else (lambda: [])
    server = web.WebServer(args.host, args.port, devices, web.influx_query(args.influx, args.database, token=token))
    stop = stop_on_signals()
    server.start()
    print(f"sen web: {server.url}  (Ctrl-C stops)", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from gateway.ops import install

    bits = install.detect_bits() if args.arch == "auto" else int(args.arch)
    if install.needs_root(args.root) and not args.dry_run:
        raise install.InstallError("installing into / needs root: run it with sudo (or use --root DIR / --dry-run)")
    steps = install.plan(root=args.root, bits=bits, sen_path=args.sen or install.default_sen_path(),
                         user=args.user, enable=args.enable)
    steps.run(dry_run=args.dry_run, say=print)
    print("next:\n" + "\n".join(f"  {line}" for line in install.next_steps(
        root=args.root, bits=bits, user=args.user, enable=args.enable)))
    return 0
