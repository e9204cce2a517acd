"""One private server process for the demo, the tests and the benchmarks: started in its own
data directory on a free loopback port, waited for until it answers, stopped (and reaped) on
``stop()``. Its log stays in the data directory so a failed test can show it.
"""

from __future__ import annotations

import logging
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from hardware.procs import die_with_parent, stop_process

from gateway.errors import GatewayError

_LOGGER = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


class DevStackError(GatewayError):
    """A private service could not be found, started or reached."""


_PORTS_FROM = 20000  # private servers' ports: from here to just below the kernel's ephemeral range
_handed_out: set[int] = set()
_pick = random.SystemRandom()  # never the global generator: a test may have seeded it, in each worker alike


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range: a port the kernel hands out (bind to port 0) can be taken as the source port of any
    outgoing connection between this check and the server's own bind ("address already in use":
    InfluxDB failed so once in a benchmark run of thousands of connections). One this process
    handed out already is never handed out again."""
    top = _ephemeral_start()
    for _ in range(200):
        port = _pick.randrange(_PORTS_FROM, top) if top - _PORTS_FROM >= 1000 else 0
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port
    raise DevStackError(f"no free TCP port found in {_PORTS_FROM}..{top - 1}")


def find_program(name: str, *extra_dirs: str) -> str:
    """Path of a system program, also looking in sbin folders that a normal user's PATH lacks."""
    found = shutil.which(name) or shutil.which(name, path=":".join((*extra_dirs, "/usr/sbin", "/sbin")))
    if found is None:
        raise DevStackError(f"{name} is not installed; run ./run.sh setup (it installs it with apt-get)")
    return found


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx (a server's ping or health endpoint)."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError):
        return False


class Service:
    """One private server process: start, wait until ready, stop, restart on the same port."""

    name = "service"

    def __init__(self, data_dir: Path, *, port: int | None = None, die_with_parent: bool = False) -> None:
        """``die_with_parent``: the server gets SIGTERM if this process dies (for the demo; start
        it from the main thread)."""
        self.die_with_parent = die_with_parent
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_path = self.data_dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # Subclasses say how to start and how to tell they are ready.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        if self.running:
            return
        command = self._command()
        _LOGGER.debug("starting %s: %s", self.name, " ".join(command))
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.data_dir, start_new_session=True,
                preexec_fn=die_with_parent() if self.die_with_parent else None,
            )
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DevStackError(
                    f"{self.name} exited with code {self._proc.returncode} at start; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready():
                _LOGGER.info("%s ready on %s:%d (pid %d)", self.name, self.host, self.port, self._proc.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise DevStackError(f"{self.name} did not become ready in {_START_TIMEOUT_S:.0f} s; "
                            f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc, timeout=_STOP_TIMEOUT_S)
        # Wait until the port is free again so a restart on the same port works.
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        """Stop at once, as a power cut would (SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, sig=signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
