"""InfluxDB ``/api/v2/write`` (InfluxDB 2.x, 1.8+, 3.x, and compatible servers) through the
``influxdb-client`` library, sorted into the same error kinds as :mod:`ingest.influx_v1`.

The library's own retries are off (``retries=False``): the writer retries, with the spool
behind it, so a batch is never dropped. Gzip as v1's: by default unless the server is on
loopback. ``create_database`` does nothing: a 2.x bucket is made by the operator (``influx
bucket create``), and a 404 "bucket not found" is retried like any unavailability, so nothing is lost meanwhile.
"""

from __future__ import annotations

import logging
import urllib.parse

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from ingest.errors import InfluxBadData, InfluxUnavailable, parse_retry_after
from ingest.influx_v1 import compress_by_default

_LOGGER = logging.getLogger(__name__)

_BAD_DATA_STATUSES = frozenset({400, 413})


class InfluxV2:
    def __init__(self, url: str, *, bucket: str, org: str = "", token: str = "",
                 timeout_s: float = 10.0, compress: bool | None = None) -> None:
        self.url = url
        self.bucket = bucket
        self.org = org or "-"
        self.compress = compress_by_default(urllib.parse.urlsplit(url).hostname or "") if compress is None else compress
        self._client = InfluxDBClient(url=url, token=token, org=self.org,
                                      timeout=int(timeout_s * 1000), enable_gzip=self.compress,
                                      retries=False)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def create_database(self) -> None:
        _LOGGER.info("writing to bucket %r on %s through /api/v2/write", self.bucket, self.url)

    def write(self, payload: bytes) -> None:
        """Write line protocol (ms precision); raises InfluxBadData or InfluxUnavailable."""
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=payload,
                                  write_precision=WritePrecision.MS)  # type: ignore[arg-type]
        except ApiException as err:
            status = int(err.status or 0)
            body = (err.body.decode("utf-8", "replace") if isinstance(err.body, bytes)
                    else str(err.body or err.reason or "")).strip()[:500]
            if status in _BAD_DATA_STATUSES:
                raise InfluxBadData(status, body) from err
            headers: dict[str, str] = dict(err.headers or {})
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            raise InfluxUnavailable(f"InfluxDB at {self.url} /api/v2/write answered HTTP {status}: "
                                    f"{body}", retry_after_s=retry_after) from err
        except (Urllib3Error, OSError) as err:
            raise InfluxUnavailable(f"InfluxDB at {self.url} unreachable: {err}") from err
