"""Private Mosquitto and InfluxDB 1.x instances for the demo, the tests and the benchmarks.

Each instance lives in its own data directory, listens on a free loopback port, is waited
for until it answers, and is stopped (and its children reaped) on `stop()`. Logs stay in
the data directory so a failed test can show them.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

_LOGGER = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


class DevStackError(RuntimeError):
    """A private service could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_program(name: str, *extra_dirs: str) -> str:
    """Path of a system program, also looking in sbin folders that a normal user's PATH lacks."""
    found = shutil.which(name) or shutil.which(name, path=":".join((*extra_dirs, "/usr/sbin", "/sbin")))
    if found is None:
        raise DevStackError(f"{name} is not installed; run ./run.sh setup (it installs it with apt-get)")
    return found


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Service:
    """One private server process: start, wait until ready, stop, restart on the same port."""

    name = "service"

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
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
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.data_dir, start_new_session=True,
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
        raise DevStackError(f"{self.name} did not become ready in {_START_TIMEOUT_S:.0f} s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Wait until the port is free again so a restart on the same port works.
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        """Stop at once, as a power cut would (SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> _Service:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Mosquitto(_Service):
    """A private Mosquitto 2.x broker with persistence in its data directory."""

    name = "mosquitto"

    def __init__(self, data_dir: Path, *, port: int | None = None, anonymous: bool = True,
                 extra_conf: Sequence[str] = ()) -> None:
        """``anonymous=False`` refuses clients without an account; ``extra_conf`` lines are
        appended to the config (password_file, acl_file, a TLS listener...)."""
        super().__init__(data_dir, port=port)
        self.anonymous = anonymous
        self.extra_conf = list(extra_conf)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            # As root Mosquitto would switch to the 'mosquitto' user and lose its data dir.
            "user root\n"
            + "".join(f"{line}\n" for line in self.extra_conf)
        )
        return [find_program("mosquitto"), "-c", str(conf)]

    def _ready(self) -> bool:
        return _port_open(self.port)


class InfluxDB(_Service):
    """A private InfluxDB 1.x server (Debian's `influxdb` package) with its own data directory."""

    name = "influxd"

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port=port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        conf = self.data_dir / "influxdb.conf"
        d = self.data_dir
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[subscriber]\n  enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return [find_program("influxd"), "-config", str(conf)]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return 200 <= int(response.status) < 300
        except (OSError, urllib.error.URLError):
            return False

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run an InfluxQL statement through /query and return the decoded JSON answer."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.url}/query", data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise DevStackError(f"InfluxDB refused {q!r}: {exc.code} {exc.read()[:200]!r}") from exc
        for result in answer.get("results", []):
            if "error" in result:
                raise DevStackError(f"InfluxDB error for {q!r}: {result['error']}")
        return answer

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of every series of the first result, as dicts (with the series' tags merged in)."""
        out: list[dict[str, Any]] = []
        for series in self.query(q, db)["results"][0].get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(tags)
                out.append(row)
        return out


class VictoriaMetrics(_Service):
    """A private VictoriaMetrics (Debian's `victoria-metrics` package): a server that takes
    InfluxDB line protocol on ``/write`` and ``/api/v2/write``, read back with ``/api/v1/export``.

    It stores ``measurement field=v`` as the metric ``measurement_field`` with the tags as
    labels, every value as a float, and keeps a second write of the same point as a second
    sample (no overwrite): an export shows every write, so it also catches a double write.
    """

    name = "victoria-metrics"

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port=port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [find_program("victoria-metrics"), f"-httpListenAddr={self.host}:{self.port}",
                f"-storageDataPath={self.data_dir / 'data'}",
                "-retentionPeriod=100y",  # test readings carry fixed, possibly old, timestamps
                "-loggerLevel=WARN", "-search.disableCache"]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as response:
                return 200 <= int(response.status) < 300
        except (OSError, urllib.error.URLError):
            return False

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching the selector ``match`` (e.g. ``{__name__="telemetry_seq"}``),
        as decoded ``/api/v1/export`` lines: ``{"metric": {...}, "values": [...], "timestamps": [...]}``.
        Flushes the server's in-memory buffers first so just-written samples are seen."""
        try:
            with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
                pass
            data = urllib.parse.urlencode({"match[]": match, "start": "0"}).encode()
            with urllib.request.urlopen(f"{self.url}/api/v1/export", data=data, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise DevStackError(f"VictoriaMetrics refused export {match!r}: {exc.code} "
                                f"{exc.read()[:200]!r}") from exc
        return [json.loads(line) for line in text.splitlines() if line.strip()]
