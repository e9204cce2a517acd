"""Which write API does the server at a URL speak? From ``/ping`` and ``/health``.

- ``/ping`` answers with ``X-Influxdb-Version``: ``1.x`` → ``v1`` (``/write``); ``2.x``/``3.x`` → ``v2``.
- No version header: ``/health`` answering 2xx → ``v2`` (InfluxDB 2.x, compatible servers such
  as VictoriaMetrics, whose ``/ping`` is a bare 204).
- No version header and ``/ping`` or ``/health`` answering 5xx: no guess is made (a 2.x still
  starting, a proxy in front of a dead server): :class:`InfluxUnavailable`, so the caller asks
  again later instead of keeping a wrong answer.
- Otherwise (``/health`` 404 and the like) ``v1``. A server that does not answer raises
  :class:`InfluxUnavailable`.
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.parse
from collections.abc import Callable

from ingest.errors import InfluxUnavailable
from ingest.writer import Sink

_LOGGER = logging.getLogger(__name__)


def _get(url: str, path: str, timeout_s: float) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    conn_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "", parts.port or (443 if https else 8086), timeout=timeout_s)
    try:
        conn.request("GET", parts.path.rstrip("/") + path)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Influxdb-Version") or ""
    except (OSError, http.client.HTTPException) as err:
        raise InfluxUnavailable(f"InfluxDB at {url} unreachable: {err}") from err
    finally:
        conn.close()


def detect_api(url: str, *, timeout_s: float = 5.0) -> str:
    """``"v1"`` or ``"v2"`` for the server at ``url``."""
    status, version = _get(url, "/ping", timeout_s)
    if version:
        api = "v1" if version.lstrip("v").startswith("1.") else "v2"
    else:
        health = _get(url, "/health", timeout_s)[0] if status // 100 != 5 else status
        if health // 100 == 5:
            raise InfluxUnavailable(f"InfluxDB at {url}: /ping {status} without a version, /health "
                                    f"{health}; cannot tell its write API yet")
        api = "v2" if health // 100 == 2 else "v1"
    _LOGGER.info("%s: /ping %s version %r -> %s write API", url, status, version or "none", api)
    return api


class AutoSink:
    """A sink that asks the server which API it speaks on first use, then delegates.

    ``make(api)`` builds the real sink for ``"v1"`` or ``"v2"``. While the server does not
    answer, writes raise :class:`InfluxUnavailable` (retried; nothing is dropped).
    """

    def __init__(self, url: str, make: Callable[[str], Sink], *, timeout_s: float = 5.0) -> None:
        self._url = url
        self._make = make
        self._timeout_s = timeout_s
        self._sink: Sink | None = None
        self._making = threading.Lock()

    def _get(self) -> Sink:
        if self._sink is None:
            with self._making:  # the writer's lanes: one asks, the others wait for its answer
                if self._sink is None:
                    self._sink = self._make(detect_api(self._url, timeout_s=self._timeout_s))
        return self._sink

    def write(self, payload: bytes) -> None:
        self._get().write(payload)

    def create_database(self) -> None:
        self._get().create_database()

    def close(self) -> None:
        close = getattr(self._sink, "close", None)
        if close is not None:
            close()
