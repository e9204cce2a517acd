"""InfluxDB 1.x HTTP API: ``/ping``, ``/query`` (CREATE DATABASE) and ``/write``.

Answers are sorted into the kinds the writer acts on:

- 2xx: written.
- 400 or 413: :class:`InfluxBadData` — the lines themselves are refused; retrying the same
  bytes would fail again, so the writer narrows the batch down and sets refused lines aside.
- 404 "database not found": :class:`InfluxDatabaseMissing` — create it and retry.
- anything else (5xx, 401/403, timeouts, refused connections, DNS): :class:`InfluxUnavailable`
  — retried with backoff, never dropped.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import urllib.parse
from dataclasses import dataclass

from ingest.errors import InfluxBadData, InfluxDatabaseMissing, InfluxUnavailable, OptionsError, parse_retry_after

_LOGGER = logging.getLogger(__name__)

_BAD_DATA_STATUSES = frozenset({400, 413})


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
                 compress: bool = True) -> None:
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
        self._compress = compress

    def _request(self, method: str, path: str, *, query: dict[str, str],
                 body: bytes | None = None, content_type: str | None = None,
                 encoding: str | None = None) -> _Answer:
        target = f"{self._base}{path}?{urllib.parse.urlencode(query)}" if query else self._base + path
        conn_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = conn_class(self._host, self._port, timeout=self._timeout_s)
        headers = {"Content-Type": content_type} if content_type else {}
        if encoding:
            headers["Content-Encoding"] = encoding
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return _Answer(status=response.status, body=response.read(),
                           headers={k.lower(): v for k, v in response.getheaders()})
        except (TimeoutError, OSError, http.client.HTTPException) as err:
            raise InfluxUnavailable(f"InfluxDB at {self.url} unreachable: {err}") from err
        finally:
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
        _LOGGER.info("database %r ready on %s", self.database, self.url)

    def write(self, payload: bytes) -> None:
        """Write line protocol (ms precision); raises by the kinds in the module docstring."""
        body = gzip.compress(payload, compresslevel=5) if self._compress else payload
        answer = self._request(
            "POST", "/write", query={"db": self.database, "precision": "ms"},
            body=body, content_type="text/plain; charset=utf-8",
            encoding="gzip" if self._compress else None,
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
