"""A small built-in web page for a Pi without Grafana: the device table and a live chart per device.

Standard library only: ``http.server`` in a thread, JSON endpoints, and the static page in
``static/`` (vanilla JavaScript and uPlot, shipped in ``static/vendor/``; no build step, nothing
fetched from the internet). Data comes from two callables, so the page works inside the gateway
or on its own (``sen web``)::

    devices()          registry rows (state, last seen, gaps), e.g. from gateway.ops.status
    query_influx(q)    an InfluxQL statement -> the decoded JSON of InfluxDB's /query

The page speaks English and Vietnamese (``static/i18n.js``): ``/`` comes with ``<html lang>``
set to the best match of the browser's ``Accept-Language`` (:func:`pick_language`), and the page
offers a switch it remembers.

Endpoints: ``/`` (the page and its files), ``/api/devices``, ``/api/metrics``,
``/api/series?metric=M&minutes=N[&site=S][&device=D]`` (the queries: ``queries.py``).
A bad parameter is a 400 with ``{"error": ...}``; a failing InfluxDB a 502.
It binds 127.0.0.1 by default: it has no login, so expose it only on a trusted network.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError
from gateway.web.queries import BadRequest, Devices, QueryInflux, WebError, device_table, metrics, series, unit_of

__all__ = ["LANGUAGES", "STATIC_DIR", "BadRequest", "Devices", "QueryInflux", "WebError", "WebServer",
           "influx_query", "pick_language", "registry_devices"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
# Only these files are served (no path from a request ever reaches the file system).
_FILES = ("index.html", "app.js", "i18n.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css")
_STATIC = {f"/{name}": (name, _TYPES[Path(name).suffix]) for name in _FILES} | {"/": ("index.html", _TYPES[".html"])}
_JSON = "application/json"
LANGUAGES = ("en", "vi")  # the tables of static/i18n.js; the first is the default
_HTML_LANG = b'<html lang="en">'


def pick_language(accept_language: str | None) -> str:
    """The page's language for an ``Accept-Language`` header: the supported one with the highest
    q (``vi-VN,vi;q=0.9,en;q=0.8`` -> ``vi``), ties to the first listed; else the default."""
    best, best_q = LANGUAGES[0], 0.0
    for item in (accept_language or "").split(",")[:32]:
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGUAGES and 0 < q <= 1 and q > best_q:
            best, best_q = primary, q
    return best


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

    def answer(self, path: str, params: dict[str, list[str]],
               accept_language: str | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body) for one GET; kept apart from HTTP for the tests."""
        if path in _STATIC:
            name, ctype = _STATIC[path]
            content = (STATIC_DIR / name).read_bytes()
            if name == "index.html":
                lang = pick_language(accept_language)
                content = content.replace(_HTML_LANG, f'<html lang="{lang}">'.encode(), 1)
            return 200, ctype, content
        try:
            if path == "/api/devices":
                body: object = device_table(self._devices, self._query)
            elif path == "/api/metrics":
                body = {"metrics": [{"name": m, "unit": unit_of(m)} for m in metrics(self._query)]}
            elif path == "/api/series":
                body = series(self._query, params, time.time_ns() // 1_000_000)
            else:
                return 404, "text/plain; charset=utf-8", b"not found\n"
        except BadRequest as err:
            return 400, _JSON, json.dumps({"error": str(err)}).encode()
        except GatewayError as err:
            _LOGGER.warning("web %s: %s", path, err)
            return 502, _JSON, json.dumps({"error": str(err)}).encode()
        return 200, _JSON, json.dumps(body).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                url = urllib.parse.urlsplit(self.path)
                language = self.headers.get("Accept-Language")
                status, ctype, body = server.answer(url.path, urllib.parse.parse_qs(url.query), language)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if ctype.startswith("text/html"):
                    self.send_header("Content-Language", pick_language(language))
                    self.send_header("Vary", "Accept-Language")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # http.server's names
                _LOGGER.debug("web: " + format, *args)

        return _Handler
