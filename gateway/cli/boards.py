"""`sen sim|flash|deploy|provision|boards`: commands that deal with boards, real or virtual."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from gateway.cli.args import Handler, add_command, heapsize, non_negative_int, positive_float, positive_int


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    sim = add_command(
        commands, "sim", summary="run virtual boards: the real firmware on the MicroPython unix port",
        description="Start N virtual boards, each the real firmware on the MicroPython VM with simulated "
                    "sensors. Each sends K readings and exits once they are acknowledged (or runs until "
                    "--duration or Ctrl-C when K is 0). Board state (config, boot counter, console log, "
                    "faults.json) lives under --state-dir. With --serial each board talks SEN1 frames on "
                    "a pseudo-terminal instead of MQTT; its path is printed and kept under "
                    "--dev-dir/ttySIM<N>. --fault-plan runs timed faults (hardware/README.md).",
        example="sen sim --mqtt mqtt://127.0.0.1:1883 --boards 3 --readings 20 --interval-ms 100\n"
                "  sen sim --serial --boards 2 --readings 50   # then: sen gateway run ... --serial '.sen/dev/ttySIM*'",
    )
    sim.add_argument("--mqtt", metavar="URL", help="broker, as mqtt://HOST:PORT (required without --serial)")
    sim.add_argument("--serial", action="store_true",
                     help="USB serial boards: one pseudo-terminal per board instead of MQTT")
    sim.add_argument("--dev-dir", type=Path, default=Path(".sen/dev"), metavar="DIR",
                     help="where the stable links to the boards' serial ports live (ttySIM0, ttySIM1, ...)")
    sim.add_argument("--ack-timeout-ms", type=positive_int, metavar="MS",
                     help="how long a board waits for the gateway's ack before sending again (firmware default)")
    sim.add_argument("--fault-proxy", action="store_true",
                     help="put a TCP fault proxy between each MQTT board and the broker (for cut/stall/partition)")
    sim.add_argument("--fault-plan", type=Path, metavar="FILE",
                     help="JSON list of timed faults: unplug, replug, garbage, power_cut, cut, stall, "
                          "partition, heal, sensor, wifi_down, clock_jump, clear, --cellular's (sen fault: one, now)")
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
                     help="cap each board's MicroPython heap as an ESP32 would, e.g. 64K (the firmware runs in 64K)")
    sim.add_argument("--state-dir", type=Path, default=Path(".sen/sim"), metavar="DIR",
                     help="where each board keeps its flash (config.json, boot counter, console.log)")
    sim.add_argument("--cellular", action="store_true", help="boards on a simulated SIM7080G each (CELLULAR.md); "
                     "faults: cell_down/up, modem_reset, modem_slow, modem_garble, reg_denied/allowed, sim_missing/in")
    sim.add_argument("--modem", choices=("sim7080", "a76xx"), help="with --cellular: the simulated modem's "
                     "family (default sim7080; a76xx: A7670/A7680)")
    sim.add_argument("--ota-pubkey", type=Path, metavar="FILE", help="the OTA public key (ota.pub of sen ota "
                     "keygen) every board trusts: boards then take signed updates from sen ota push")
    kit = sim.add_mutually_exclusive_group()
    kit.add_argument("--profile", metavar="NAME", help="boards with the board, pins and sensors of "
                     "firmware/examples/NAME.json, e.g. smart-garden (DHT20, soil probe, BH1750)")
    kit.add_argument("--config", type=Path, metavar="FILE",
                     help="boards with the board, pins and sensors of this config.json (sen provision's)")
    _register_tools(commands)
    return {"sim": _cmd_sim, "flash": _cmd_flash, "deploy": _cmd_deploy, "provision": _cmd_provision,
            "boards": _cmd_boards}


def _register_tools(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flash = add_command(
        commands, "flash", summary="put MicroPython on a board with esptool (erase, then write)",
        description="Erase the board's flash and write a MicroPython image at the offset its profile "
                    "gives (ESP32 0x1000, ESP32-S3/C3 0x0), with esptool's progress shown. The port is "
                    "checked first: missing, permission denied and busy ports get a clear message.",
        example="sen flash --board yolo-uno --port /dev/ttyACM0 --image ESP32_GENERIC_S3-v1.24.1.bin",
    )
    flash.add_argument("--board", required=True, help="board profile id (hardware/boards/<id>.json)")
    flash.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    flash.add_argument("--image", required=True, type=Path, help="MicroPython .bin for the board's MCU")
    flash.add_argument("--baud", type=positive_int, default=460800, help="esptool baud rate")
    flash.add_argument("--no-erase", action="store_true", help="skip erase-flash")
    flash.add_argument("--dry-run", action="store_true", help="print the esptool steps, run nothing")

    deploy = add_command(
        commands, "deploy", summary="copy the firmware and its config.json to a board with mpremote",
        description="Copy firmware/lib, boot.py, main.py and a config.json (from sen provision) to a "
                    "board running MicroPython, then reset it. --mpy compiles lib/ to .mpy first "
                    "(mpy-cross): less RAM at import on the board.",
        example="sen deploy --port /dev/ttyACM0 --config .sen/provision/yolo-01.json --mpy --board yolo-uno",
    )
    deploy.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    deploy.add_argument("--config", type=Path, help="config.json to copy (from sen provision)")
    deploy.add_argument("--mpy", action="store_true", help="compile firmware/lib to .mpy before copying")
    deploy.add_argument("--board", default="esp32-devkitc", help="board profile (picks the .mpy architecture)")
    deploy.add_argument("--dry-run", action="store_true", help="print the mpremote steps, run nothing")

    provision = add_command(
        commands, "provision", summary="write a board's config.json from flags or prompts, checked first",
        description="Build config.json for a board: site, device id, broker, WiFi, transport, and the "
                    "board profile's pins and sensors. --sensor NAME (repeatable) picks the kit's sensors "
                    "instead, each on the pins the profile gives for it; a sensor the profile has no pin "
                    "for is refused, naming the key (hardware/WIRING.md). It is checked (also by the "
                    "firmware's own checker on the MicroPython unix port when available) before it is "
                    "written. Missing values are asked for when stdin is a terminal.",
        example="sen provision --board yolo-uno --site lab --device yolo-01 --broker 192.168.1.10 "
                "--wifi-ssid lab-wifi --out .sen/provision/yolo-01.json\n"
                "  sen provision --board yolo-uno --site garden --device yolo-02 --broker 192.168.1.10 "
                "--wifi-ssid lab-wifi --sensor dht20 --sensor soil --sensor bh1750 --out .sen/provision/yolo-02.json",
    )
    provision.add_argument("--board", required=True, help="board profile id")
    provision.add_argument("--site", help="site name ([a-z0-9_-]{1,32})")
    provision.add_argument("--device", help="device id (default: esp32-<chip id>, chosen by the board)")
    provision.add_argument("--broker", help="MQTT broker host (the Pi)")
    provision.add_argument("--broker-port", type=positive_int, default=1883, help="MQTT broker port")
    provision.add_argument("--transport", choices=("mqtt", "serial", "cellular"), default="mqtt",
                           help="how readings travel (cellular: a SIM7080G or A7670/A7680 modem, firmware/CELLULAR.md)")
    provision.add_argument("--wifi-ssid", help="WiFi network (MQTT boards)")
    provision.add_argument("--wifi-password", help="WiFi password (asked for when omitted and --wifi-ssid given)")
    provision.add_argument("--interval-ms", type=positive_int, default=1000, help="sampling interval")
    provision.add_argument("--sensor", action="append", metavar="NAME",
                           help=f"a kit sensor on the board, repeatable: {', '.join(KIT_SENSOR_NAMES)} "
                                "(default: the board profile's own sensors)")
    provision.add_argument("--soil-dry", type=non_negative_int, metavar="RAW",
                           help="the soil probe's raw reading in dry air (with --soil-wet)")
    provision.add_argument("--soil-wet", type=non_negative_int, metavar="RAW",
                           help="the soil probe's raw reading in a glass of water (with --soil-dry)")
    provision.add_argument("--ota-pubkey", type=Path, metavar="FILE",
                           help="the OTA public key (ota.pub of sen ota keygen): the board takes signed updates")
    cell = provision.add_argument_group("cellular boards (--transport cellular; wiring: hardware/WIRING.md)")
    cell.add_argument("--modem", choices=("sim7080", "a76xx"), help="family (default: the profile's, else sim7080)")
    cell.add_argument("--apn-preset", choices=("viettel", "vinaphone", "mobifone"), help="the SIM's network (Vietnam)")
    cell.add_argument("--apn", help="the APN, when no preset fits (with --apn-user, --apn-password if it needs them)")
    cell.add_argument("--apn-user", help="APN user name")
    cell.add_argument("--apn-password", help="APN password")
    cell.add_argument("--cell-mode", choices=("mqtt", "ppp"), default="mqtt", help="the modem's MQTT stack, or PPP")
    for pin, what in (("tx", "ESP32 TX, to the modem's RX"), ("rx", "ESP32 RX, from the modem's TX"),
                      ("pwrkey", "the modem's PWRKEY (through an NPN transistor: --pwrkey-active 1)")):
        cell.add_argument(f"--modem-{pin}", type=non_negative_int, metavar="GPIO", help=what)
    cell.add_argument("--modem-uart", type=non_negative_int, help="the ESP32 UART for the modem: 1 or 2 (UART0 "
                      "is the console; an ESP32-C3 has only 1; default: the profile's, else 1)")
    cell.add_argument("--pwrkey-active", type=int, choices=(0, 1), help="PWRKEY's level (default: profile's, else 1)")
    for flag, meta, what in (("psm-tau", "DURATION", "PSM: wake every DURATION (1h) to tell the network"),
                             ("psm-active", "DURATION", "PSM: listen this long (10s) before sleeping again"),
                             ("edrx", "SECONDS", "eDRX: listen every SECONDS (5.12 ... 10485.76, e.g. 81.92)")):
        cell.add_argument(f"--{flag}", metavar=meta, help=what)
    cell.add_argument("--edrx-act", choices=("ltem", "nbiot"), help="eDRX network: ltem (LTE-M, default) or nbiot")
    provision.add_argument("--out", type=Path, default=Path(".sen/provision/config.json"), help="where to write")

    add_command(commands, "boards", summary="list the board profiles, each checked",
                description="Load and check every hardware/boards/*.json; print id, MCU, flash offset, "
                            "image, I2C pins and USB ids.", example="sen boards")


# The names `sen provision --sensor` takes: hardware.provision.KIT_SENSORS's keys (test_provision_kit
# checks they agree), spelled out here so that building the parser loads nothing from hardware/.
KIT_SENSOR_NAMES = ("dht20", "sht30", "sht31", "bme280", "bh1750", "ds18b20", "soil", "ldr", "gas", "hcsr04")


def _fail(message: str) -> int:
    print(f"sen: error: {message}", file=sys.stderr)
    return 2


def _cmd_boards(args: argparse.Namespace) -> int:
    from hardware.boards import BoardError, board_ids, load_board

    bad = 0
    for board_id in board_ids():
        try:
            b = load_board(board_id)
        except BoardError as err:
            bad += 1
            print(f"{board_id}: INVALID: {err}")
            continue
        offset = "-" if b.flash_offset is None else hex(b.flash_offset)
        usb = " ".join(f"{v}:{p}" for v, p in b.usb_ids) or "-"
        print(f"{b.id:20} {b.mcu:8} {offset:7} {b.image or '-':18} i2c={b.pins['i2c']} usb={usb}")
    return 1 if bad else 0


def _cmd_flash(args: argparse.Namespace) -> int:
    from hardware.boards import BoardError, load_board
    from hardware.flash import FlashError, check_port, flash_steps, run_steps, show

    try:
        profile = load_board(args.board)
        steps = flash_steps(profile, args.port, args.image, baud=args.baud, erase=not args.no_erase)
        # A dry run checks the image too: it shows what would run, and that it could.
        if not args.image.is_file():
            raise FlashError(f"{args.image}: no such image (download {profile.image} from micropython.org)")
        if args.dry_run:
            print(show(steps))
            return 0
        check_port(args.port)
        run_steps(steps)
    except (BoardError, FlashError) as err:
        return _fail(str(err))
    print(f"flashed {args.image.name} to {profile.name} on {args.port}; next: sen deploy --port {args.port}")
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    import tempfile  # ~5 ms of every sen command's start, when at the top
    from hardware.boards import BoardError, load_board
    from hardware.flash import FlashError, check_port, compile_lib, deploy_steps, mpy_arch, run_steps, show

    try:
        if args.config is not None and not args.config.is_file():
            raise FlashError(f"{args.config}: no such config (write one with sen provision)")
        with tempfile.TemporaryDirectory(prefix="sen-mpy-") as tmp:
            staged = None
            if args.mpy:
                staged = Path(tmp) / "lib" if args.dry_run else compile_lib(
                    Path(tmp), arch=mpy_arch(load_board(args.board)))
            steps = deploy_steps(args.port, args.config, staged_lib=staged)
            if args.dry_run:
                print(show(steps))
                return 0
            check_port(args.port)
            run_steps(steps)
    except (BoardError, FlashError) as err:
        return _fail(str(err))
    return 0


def _cmd_provision(args: argparse.Namespace) -> int:
    from hardware.boards import BoardError, load_board
    from hardware.cellpower import from_flags
    from hardware.provision import Cell, ProvisionError, build_config, firmware_check, write_config

    def ask(value: str | None, prompt: str, *, secret: bool = False) -> str | None:
        if value is not None or not sys.stdin.isatty():
            return value
        answer = getpass.getpass(f"{prompt}: ") if secret else input(f"{prompt}: ").strip()
        return answer or None

    try:
        profile = load_board(args.board)
        site = ask(args.site, "site (e.g. lab)")
        broker = ask(args.broker, "MQTT broker host") if args.transport != "serial" else (args.broker or "127.0.0.1")
        ssid = ask(args.wifi_ssid, "WiFi SSID") if args.transport == "mqtt" and profile.mcu != "sim" else args.wifi_ssid
        password = ask(args.wifi_password, "WiFi password", secret=True) if ssid else None
        if site is None or broker is None:
            raise ProvisionError("give --site and --broker (no terminal to ask on)")
        if (args.soil_dry is None) != (args.soil_wet is None):
            raise ProvisionError("give --soil-dry and --soil-wet together (raw readings in air and in water)")
        soil_cal = None if args.soil_dry is None else (args.soil_dry, args.soil_wet)
        power = from_flags(args.transport, args.psm_tau, args.psm_active, args.edrx, args.edrx_act)
        ota_pub = None
        if args.ota_pubkey is not None:
            from gateway.ops.ota_keys import OtaError, load_pub

            try:
                ota_pub = load_pub(args.ota_pubkey).hex()
            except OtaError as err:
                raise ProvisionError(str(err)) from None
        config = build_config(profile, site=site, device_id=args.device, broker_host=broker,
                              broker_port=args.broker_port, transport=args.transport, wifi_ssid=ssid,
                              wifi_password=password or "", interval_ms=args.interval_ms,
                              sensors=args.sensor, soil_cal=soil_cal, ota_pub=ota_pub, cell=Cell(
                                  modem=args.modem, mode=args.cell_mode, apn=args.apn, apn_preset=args.apn_preset,
                                  user=args.apn_user, password=args.apn_password, tx=args.modem_tx, rx=args.modem_rx,
                                  pwrkey=args.modem_pwrkey, uart=args.modem_uart, pwrkey_active=args.pwrkey_active,
                                  psm=power[0], edrx=power[1]))
        problem = firmware_check(config)
        if problem is not None:
            raise ProvisionError(f"the firmware would refuse this config: {problem}")
    except (BoardError, ProvisionError) as err:
        return _fail(str(err))
    sensors = ", ".join(s.get("name", s["type"]) for s in config["sensors"]) or "none"
    print(f"wrote {write_config(config, args.out)} for {profile.name} (sensors: {sensors})")
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from hardware import sim
    from hardware.faults import FaultPlan, FaultPlanError

    from gateway.service.options import parse_mqtt_url

    if args.mqtt is None and not args.serial:
        raise sim.SimError("give --mqtt mqtt://HOST:PORT, or --serial for USB serial boards")
    broker = parse_mqtt_url(args.mqtt, option="--mqtt") if args.mqtt else None
    host, port = (broker.host, broker.port) if broker else ("127.0.0.1", 1883)
    try:
        plan = FaultPlan.load(args.fault_plan) if args.fault_plan else None
    except FaultPlanError as err:
        raise sim.SimError(str(err)) from None
    profile = sim.load_profile(args.profile, args.config) if args.profile or args.config else None
    ota_pub = None
    if args.ota_pubkey is not None:
        from gateway.ops.ota_keys import load_pub

        ota_pub = load_pub(args.ota_pubkey).hex()
    needs_proxy = plan is not None and any(s.fault in ("cut", "stall", "heal", "partition") for s in plan.steps)
    return sim.run(sim.SimOptions(
        broker_host=host, broker_port=port, boards=args.boards, readings=args.readings,
        interval_ms=args.interval_ms, batch_max=args.batch_max, duration_s=args.duration, site=args.site,
        seed=args.seed, heapsize=args.heapsize, state_dir=args.state_dir, serial=args.serial,
        dev_dir=args.dev_dir, fault_proxy=args.fault_proxy or needs_proxy, fault_plan=plan,
        ack_timeout_ms=args.ack_timeout_ms, profile=profile, cellular=args.cellular or bool(args.modem),
        modem=args.modem or "sim7080", ota_pub=ota_pub,
    ))
