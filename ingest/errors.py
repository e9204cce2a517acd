"""The exceptions of the ingest package; :class:`IngestError` is the root."""


class IngestError(Exception):
    """Root of every error raised by the ingest package."""


class SpoolError(IngestError):
    """The spool's SQLite file could not be opened or written."""


class LineProtocolError(IngestError, ValueError):
    """A point cannot be encoded as line protocol (bad name, non-finite number, no fields)."""


class InfluxError(IngestError):
    """InfluxDB did not accept a request."""


class InfluxBadData(InfluxError):
    """InfluxDB refused the data itself (HTTP 400): retrying would fail the same way."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB refused the data (HTTP {status}): {message}")
        self.status = status
        self.message = message


class InfluxUnavailable(InfluxError):
    """InfluxDB could not be reached or failed (5xx, timeout, refused, auth): retry later."""


class InfluxDatabaseMissing(InfluxUnavailable):
    """The database does not exist (HTTP 404 from /write): create it, then retry."""
