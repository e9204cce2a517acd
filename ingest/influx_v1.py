"""InfluxDB 1.x HTTP API: ``/ping``, ``/query`` (CREATE DATABASE) and ``/write``.

Answers are sorted into the kinds the writer acts on:

- 2xx: written.
- 400 or 413: :class:`InfluxBadData` — the lines themselves are refused; retrying the same
  bytes would fail again, so the writer narrows the batch down and sets refused lines aside.
- 404 "database not found": :class:`InfluxDatabaseMissing` — create it and retry.
- anything else (5xx, 401/403, timeouts, refused connections, DNS): :class:`InfluxUnavailable`
  — retried with backoff, never dropped.

Writes go over one kept-alive connection (a new TCP connection per batch cost the gateway and
InfluxDB both); when the server closed it in between (an idle timeout, a restart), the write goes
again on a new one, once: a write is idempotent. Bodies are gzip'd when ``compress`` says so; by
default (``None``) unless the server is on this machine's loopback (:func:`compress_by_default`),
where compressing costs CPU on both sides and saves nothing.
"""

from __future__ import annotations

import gzip
import http.client
import ipaddress
import json
import logging
import threading
import urllib.parse
from dataclasses import dataclass

from ingest.errors import InfluxBadData, InfluxDatabaseMissing, InfluxUnavailable, OptionsError, parse_retry_after

_LOGGER = logging.getLogger(__name__)

_BAD_DATA_STATUSES = frozenset({400, 413})
# What a kept connection the server closed meanwhile fails with (before any answer came).
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def compress_by_default(host: str) -> bool:
    """gzip write bodies unless ``host`` is this machine (``localhost``, a loopback address)."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: another machine, as far as we know
        return True


@dataclass(frozen=True, kw_only=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()[:500]


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes, with ``\\`` and ``"`` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxV1:
    """A small client for one InfluxDB 1.x server and one database."""

    def __init__(self, url: str, *, database: str, timeout_s: float = 10.0,
                 compress: bool | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionsError(f"InfluxDB URL must be http://HOST:PORT, got {url!r}")
        self.url = url
        self.database = database
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 8086)
        self._base = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self.compress = compress_by_default(self._host) if compress is None else compress
        self._kept: list[http.client.HTTPConnection] = []  # the writes' connections, idle between writes
        self._kept_lock = threading.Lock()
        self.connections = 0  # opened for writes, in all

    def _connect(self) -> http.client.HTTPConnection:
        conn_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return conn_class(self._host, self._port, timeout=self._timeout_s)

    def _request(self, method: str, path: str, *, query: dict[str, str],
                 body: bytes | None = None, content_type: str | None = None,
                 encoding: str | None = None, keep: bool = False) -> _Answer:
        """One request; on a new connection closed after it, or (``keep``) on the kept one."""
        target = f"{self._base}{path}?{urllib.parse.urlencode(query)}" if query else self._base + path
        headers = {"Content-Type": content_type} if content_type else {}
        if encoding:
            headers["Content-Encoding"] = encoding
        if not keep:
            conn = self._connect()
            try:
                return self._exchange(conn, method, target, body, headers)
            finally:
                conn.close()
        while True:  # writes in flight together (ingest.writer's lanes) each take a connection of their own
            with self._kept_lock:
                kept = self._kept.pop() if self._kept else None
                if fresh := kept is None:
                    self.connections += 1
            conn = kept or self._connect()
            try:
                answer = self._exchange(conn, method, target, body, headers)
            except InfluxUnavailable as err:
                conn.close()
                if fresh or not isinstance(err.__cause__, _STALE):
                    raise
                _LOGGER.debug("InfluxDB closed a kept connection (%s); writing on a new one", err)
                continue
            with self._kept_lock:
                self._kept.append(conn)
            return answer

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> _Answer:
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return _Answer(status=response.status, body=response.read(),  # read whole: the connection stays usable
                           headers={k.lower(): v for k, v in response.getheaders()})
        except (TimeoutError, OSError, http.client.HTTPException) as err:
            raise InfluxUnavailable(f"InfluxDB at {self.url} unreachable: {err}") from err

    def close(self) -> None:
        """Close the writes' connections (the next write opens one again)."""
        with self._kept_lock:
            kept, self._kept = self._kept, []
        for conn in kept:
            conn.close()

    def ping(self) -> str:
        """The server's version (from ``X-Influxdb-Version``); raises if it does not answer."""
        answer = self._request("GET", "/ping", query={})
        if answer.status // 100 != 2:
            raise InfluxUnavailable(f"InfluxDB at {self.url} /ping answered HTTP {answer.status}")
        return answer.headers.get("x-influxdb-version", "unknown")

    def query(self, q: str) -> dict[str, object]:
        """POST an InfluxQL statement to ``/query``; the decoded JSON answer."""
        answer = self._request(
            "POST", "/query", query={"db": self.database},
            body=urllib.parse.urlencode({"q": q}).encode("ascii"),
            content_type="application/x-www-form-urlencoded",
        )
        if answer.status // 100 != 2:
            raise InfluxUnavailable(
                f"InfluxDB at {self.url} /query answered HTTP {answer.status}: {answer.text()}")
        result: dict[str, object] = json.loads(answer.body)
        return result

    def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists)."""
        result = self.query(f"CREATE DATABASE {quote_identifier(self.database)}")
        results = result.get("results")
        for statement in results if isinstance(results, list) else []:
            if isinstance(statement, dict) and "error" in statement:
                raise InfluxUnavailable(
                    f"CREATE DATABASE {self.database!r} failed: {statement['error']}")
        _LOGGER.info("database %r ready on %s (writes %s)", self.database, self.url,
                     "gzip'd" if self.compress else "not compressed")

    def write(self, payload: bytes) -> None:
        """Write line protocol (ms precision); raises by the kinds in the module docstring."""
        body = gzip.compress(payload, compresslevel=5) if self.compress else payload
        answer = self._request(
            "POST", "/write", query={"db": self.database, "precision": "ms"},
            body=body, content_type="text/plain; charset=utf-8",
            encoding="gzip" if self.compress else None, keep=True,
        )
        if answer.status // 100 == 2:
            return
        text = answer.text()
        if answer.status == 404 and "database not found" in text:
            raise InfluxDatabaseMissing(f"database {self.database!r} not found at {self.url}")
        if answer.status in _BAD_DATA_STATUSES:
            raise InfluxBadData(answer.status, text)
        raise InfluxUnavailable(f"InfluxDB at {self.url} /write answered HTTP {answer.status}: {text}",
                                retry_after_s=parse_retry_after(answer.headers.get("retry-after")))
