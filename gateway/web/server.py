"""A small built-in web page for a Pi without Grafana: the device table and a live chart per device.

Standard library only: ``http.server`` in a thread, JSON endpoints, and the static page in
``gateway/web/`` (vanilla JavaScript drawing inline SVG; no build step). Data comes from two
callables, so the page works inside the gateway or on its own (``sen web``)::

    devices()          registry rows (state, last seen, gaps), e.g. from gateway.ops.status
    query_influx(q)    an InfluxQL statement -> the decoded JSON of InfluxDB's /query

Endpoints: ``/`` (the page), ``/api/devices``, ``/api/series?site=S&device=D&minutes=M``.
It binds 127.0.0.1 by default: it has no login, so expose it only on a trusted network.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

_LOGGER = logging.getLogger(__name__)

Devices = Callable[[], list[dict[str, Any]]]
QueryInflux = Callable[[str], dict[str, Any]]

STATIC_DIR = Path(__file__).with_name("static")
_STATIC = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
           "/style.css": ("style.css", "text/css")}
_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_DIAG = ("rssi_dbm", "heap_free", "outbox", "dropped")
_MAX_POINTS = 600
_LOOKBACK = "7d"


class WebError(GatewayError):
    """The web page's data source failed."""


def influx_query(url: str, database: str, *, token: str | None = None, timeout_s: float = 10.0) -> QueryInflux:
    """A ``query_influx`` for InfluxDB's /query (1.x, or 2.x through its v1 API with a DBRP mapping)."""
    def query(q: str) -> dict[str, Any]:
        params = urllib.parse.urlencode({"db": database, "q": q, "epoch": "ms"})
        request = urllib.request.Request(f"{url.rstrip('/')}/query?{params}")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except (OSError, ValueError) as err:
            raise WebError(f"InfluxDB query failed: {err}") from err
        return answer
    return query


def registry_devices(spool_dir: Path) -> Devices:
    """A ``devices`` callable reading the gateway's registry in ``spool_dir`` (empty until it exists)."""
    from dataclasses import asdict

    from gateway.ops.status import read_devices

    def devices() -> list[dict[str, Any]]:
        try:
            rows = read_devices(spool_dir)
        except GatewayError as err:
            _LOGGER.debug("no registry yet: %s", err)
            return []
        return [{**asdict(r), "missing": r.missing} for r in rows]
    return devices


def _series(answer: dict[str, Any]) -> list[dict[str, Any]]:
    results = answer.get("results") or [{}]
    if "error" in results[0]:
        raise WebError(f"InfluxDB: {results[0]['error']}")
    found: list[dict[str, Any]] = results[0].get("series", [])
    return found


def _rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(series["columns"], values)) for values in series.get("values", [])]


def device_table(devices: Devices, query: QueryInflux) -> list[dict[str, Any]]:
    """One row per (site, device): InfluxDB's last reading and diagnostics, merged with the registry."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for s in _series(query(f'SELECT last("seq") AS "seq" FROM "telemetry" WHERE time > now() - {_LOOKBACK} '
                           'GROUP BY "site", "device", "board"')):
        tags, row = s.get("tags", {}), _rows(s)[0]
        key = (tags.get("site", ""), tags.get("device", ""))
        table[key] = {"site": key[0], "device": key[1], "board": tags.get("board", ""),
                      "last_reading_ms": row["time"], "seq": row["seq"]}
    fields = ", ".join(f'last("{f}") AS "{f}"' for f in _DIAG)
    for s in _series(query(f'SELECT {fields} FROM "device_diag" WHERE time > now() - {_LOOKBACK} '
                           'GROUP BY "site", "device"')):
        tags, row = s.get("tags", {}), _rows(s)[0]
        key = (tags.get("site", ""), tags.get("device", ""))
        entry = table.setdefault(key, {"site": key[0], "device": key[1]})
        entry.update({f: row.get(f) for f in _DIAG})
    for reg in devices():
        key = (str(reg.get("site", "")), str(reg.get("device", "")))
        table.setdefault(key, {"site": key[0], "device": key[1]}).update(reg)
    return [table[k] for k in sorted(table)]


def series(query: QueryInflux, site: str, device: str, minutes: int) -> dict[str, Any]:
    """The device's readings of the last ``minutes``: {"metrics": [...], "points": [{time, metric...}]}."""
    if not (_NAME.fullmatch(site) and _NAME.fullmatch(device)):
        raise ValueError("site and device must match [a-z0-9_-]{1,32}")
    minutes = max(1, min(minutes, 24 * 60))
    found = _series(query(f"SELECT * FROM \"telemetry\" WHERE \"site\" = '{site}' AND \"device\" = '{device}' "
                          f"AND time > now() - {minutes}m ORDER BY time DESC LIMIT {_MAX_POINTS}"))
    points = _rows(found[0]) if found else []
    points.reverse()
    skip = {"time", "site", "device", "board", "seq", "boot"}
    metrics = sorted({k for p in points for k, v in p.items()
                      if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {"metrics": metrics, "points": [{k: p[k] for k in ("time", *metrics) if k in p} for p in points]}


class WebServer:
    """The page and its JSON endpoints, served from a background thread."""

    def __init__(self, host: str, port: int, devices: Devices, query_influx: QueryInflux) -> None:
        self._devices, self._query = devices, query_influx
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sen-web", daemon=True)
        self._thread.start()
        _LOGGER.info("web page on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def answer(self, path: str, params: dict[str, list[str]]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one GET; kept apart from HTTP for the tests."""
        if path in _STATIC:
            name, ctype = _STATIC[path]
            return 200, f"{ctype}; charset=utf-8", (STATIC_DIR / name).read_bytes()
        try:
            if path == "/api/devices":
                body: object = device_table(self._devices, self._query)
            elif path == "/api/series":
                first = {k: v[0] for k, v in params.items() if v}
                body = series(self._query, first.get("site", ""), first.get("device", ""),
                              int(first.get("minutes", "15")))
            else:
                return 404, "text/plain", b"not found\n"
        except ValueError as err:
            return 400, "application/json", json.dumps({"error": str(err)}).encode()
        except GatewayError as err:
            _LOGGER.warning("web %s: %s", path, err)
            return 502, "application/json", json.dumps({"error": str(err)}).encode()
        return 200, "application/json", json.dumps(body).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urllib.parse.urlsplit(self.path)
                status, ctype, body = server.answer(url.path, urllib.parse.parse_qs(url.query))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                _LOGGER.debug("web: " + format, *args)

        return _Handler
