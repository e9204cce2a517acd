"""Private time-series servers for the demo, the tests and the benchmarks: InfluxDB 1.x
(Debian's ``influxdb``) and VictoriaMetrics (a real ``/api/v2/write`` server)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.devstack.process import DevStackError, Service, find_program, free_port, http_ok


class InfluxDB(Service):
    """A private InfluxDB 1.x server (Debian's `influxdb` package) with its own data directory."""

    name = "influxd"

    def __init__(self, data_dir: Path, *, port: int | None = None, die_with_parent: bool = False) -> None:
        super().__init__(data_dir, port=port, die_with_parent=die_with_parent)
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
        return http_ok(f"{self.url}/ping")

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
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                out.append(row)
        return out


class VictoriaMetrics(Service):
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
        return http_ok(f"{self.url}/health")

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
