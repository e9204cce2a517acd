"""The exceptions of the ingest package; :class:`IngestError` is the root."""


class IngestError(Exception):
    """Root of every error raised by the ingest package."""


class OptionsError(IngestError, ValueError):
    """Options an ingest class cannot work with (a bad InfluxDB URL, batch size, backoff bounds)."""


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
    """InfluxDB could not be reached or failed (5xx, timeout, refused, auth): retry later.

    ``retry_after_s``: what the server's ``Retry-After`` header asked for, if anything.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, *, cap_s: float = 300.0) -> float | None:
    """A ``Retry-After`` header in seconds (the delta-seconds form), capped; None otherwise."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, cap_s)


class InfluxDatabaseMissing(InfluxUnavailable):
    """The database does not exist (HTTP 404 from /write): create it, then retry."""
