"""Serial input: SEN1 frames from USB-attached boards (pyserial), acks back on the same line.

    SerialInput(handler.handle, "/dev/serial/by-id/*").start()  ...  .stop()

One reader thread per port. A scanner thread expands the paths/globs every
``scan_interval_s`` and opens what appeared (a board plugged in, or plugged again after an
unplug); a reader whose port vanishes or fails ends, and the port is opened again once it is
back. Each good frame is handed to ``handle(topic, payload, received_ms=, source=)`` (the
gateway's :class:`~gateway.handler.Handler`); when that returns an ack, the ack goes back to the
board as a ``SEN1 {"kind":"ack",...}`` frame. If ``handle`` raises, nothing is acked: the
board sends the readings again. Noise is skipped; bad frames and bad CRCs are counted.
A failing port (busy, no permission, random bytes) never stops the other ports.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import serial  # type: ignore[import-untyped,unused-ignore]  # pyserial ships no types

from gateway.serial_frame import MAX_LINE, Outcome, Parsed, ack_frame, names_ok, parse_line

_LOGGER = logging.getLogger(__name__)

_READ_TIMEOUT_S = 0.2
_OPEN_FAIL_LOG_EVERY_S = 60.0
_GLOB_CHARS = frozenset("*?[")


class AckLike(Protocol):
    def payload(self) -> dict[str, int]: ...


HandleFn = Callable[..., Any]
"""``handle(topic: str, payload: bytes, *, received_ms: int, source: str) -> Ack | None``."""


def expand(patterns: Sequence[str]) -> list[str]:
    """The ports the patterns name now: globs expanded, plain paths kept when they exist."""
    found: list[str] = []
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if _GLOB_CHARS & set(pattern) else [pattern]
        found.extend(p for p in paths if os.path.exists(p) and p not in found)
    return found


class _Reader(threading.Thread):
    def __init__(self, owner: SerialInput, path: str, port: serial.Serial) -> None:
        super().__init__(name=f"serial-{os.path.basename(path)}", daemon=True)
        self.owner, self.path, self.port = owner, path, port

    def run(self) -> None:
        buffer = bytearray()
        discarding = False
        try:
            while not self.owner.stopping:
                chunk = self.port.read(max(1, self.port.in_waiting))
                if not chunk:
                    continue
                buffer += chunk
                while True:
                    end = buffer.find(b"\n")
                    if end < 0:
                        break
                    line = bytes(buffer[:end])
                    del buffer[:end + 1]
                    if discarding:  # the tail of an over-long line
                        discarding = False
                        continue
                    self.owner.line(self.path, self.port, line)
                if len(buffer) > MAX_LINE:
                    self.owner.count(self.path, Outcome.BAD_FRAME)
                    buffer.clear()
                    discarding = True
        except (serial.SerialException, OSError) as err:
            if not self.owner.stopping:
                _LOGGER.warning("serial port %s lost (%s); waiting for it to come back", self.path, err)
                self.owner.count(self.path, "disconnects")
        finally:
            try:
                self.port.close()
            except (serial.SerialException, OSError):
                pass
            self.owner.reader_ended(self.path, self)


class SerialInput:
    def __init__(self, handle: HandleFn, ports: str | Sequence[str], *, baudrate: int = 115200,
                 scan_interval_s: float = 1.0,
                 opener: Callable[[str, int], serial.Serial] | None = None) -> None:
        self._handle = handle
        self._patterns = [ports] if isinstance(ports, str) else list(ports)
        self._baudrate = baudrate
        self._scan_interval_s = scan_interval_s
        self._open = opener or _open_port
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._readers: dict[str, _Reader] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._open_failed: dict[str, float] = {}
        self._scanner: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        _LOGGER.info("serial input watching %s", ", ".join(self._patterns))
        self._scan()
        self._scanner = threading.Thread(target=self._scan_loop, name="serial-scan", daemon=True)
        self._scanner.start()

    def stop(self) -> None:
        self._stop.set()
        if self._scanner is not None:
            self._scanner.join()
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.join(timeout=5 * _READ_TIMEOUT_S + 1)

    def open_ports(self) -> list[str]:
        with self._lock:
            return sorted(self._readers)

    def counts(self, path: str | None = None) -> dict[str, int]:
        """Counters (frames by kind, noise, bad_frame, bad_crc, acks, errors...), one port or all."""
        with self._lock:
            if path is not None:
                return dict(self._counts.get(path, Counter()))
            total: Counter[str] = Counter()
            for counts in self._counts.values():
                total.update(counts)
            return dict(total)

    # -- called by readers ------------------------------------------------------------
    def count(self, path: str, what: str) -> None:
        with self._lock:
            self._counts.setdefault(path, Counter())[str(what)] += 1

    def reader_ended(self, path: str, reader: _Reader) -> None:
        with self._lock:
            if self._readers.get(path) is reader:
                del self._readers[path]

    def line(self, path: str, port: serial.Serial, raw: bytes) -> None:
        parsed = parse_line(raw)
        self.count(path, parsed.outcome)
        if parsed.outcome in (Outcome.BAD_FRAME, Outcome.BAD_CRC):
            _LOGGER.debug("%s: %s: %s", path, parsed.outcome, parsed.detail)
        if parsed.outcome not in (Outcome.TELEMETRY, Outcome.STATUS):
            return  # noise, bad lines, and frames meant for boards (ack, cmd) echoed back
        ack = self._deliver(path, parsed)
        if ack is not None:
            port.write(ack_frame(ack.payload()))
            port.flush()
            self.count(path, "acks_sent")

    def _deliver(self, path: str, parsed: Parsed) -> AckLike | None:
        topic = parsed.topic() if names_ok(parsed) else None
        if topic is None:  # the handler keeps it as a dead letter (bad topic / bad name)
            topic = f"serial/{parsed.message.get('site')!s:.32}/{parsed.message.get('dev')!s:.32}"
        try:
            result = self._handle(topic, parsed.payload, received_ms=time.time_ns() // 1_000_000,
                                  source=f"serial:{path}")
        except Exception:  # noqa: BLE001 — a store failure must not kill the reader
            self.count(path, "handler_errors")
            _LOGGER.exception("could not store a frame from %s; not acknowledged, the board sends "
                              "it again", path)
            return None
        return result if result is not None and hasattr(result, "payload") else None

    # -- scanning -----------------------------------------------------------------------
    def _scan_loop(self) -> None:
        while not self._stop.wait(self._scan_interval_s):
            self._scan()

    def _scan(self) -> None:
        for path in expand(self._patterns):
            with self._lock:
                if path in self._readers:
                    continue
            try:
                port = self._open(path, self._baudrate)
            except (serial.SerialException, OSError, ValueError) as err:
                self._open_failure(path, err)
                continue
            self._open_failed.pop(path, None)
            self.count(path, "opens")
            _LOGGER.info("serial port %s open", path)
            reader = _Reader(self, path, port)
            with self._lock:
                self._readers[path] = reader
            reader.start()

    def _open_failure(self, path: str, err: Exception) -> None:
        now = time.monotonic()
        last = self._open_failed.get(path)
        if last is None or now - last >= _OPEN_FAIL_LOG_EVERY_S:
            self._open_failed[path] = now
            _LOGGER.error("cannot open serial port %s: %s", path, describe_open_error(err))
        self.count(path, "open_errors")


def describe_open_error(err: Exception) -> str:
    """A one-line reason for a port that would not open (busy, permission, missing)."""
    text = str(err)
    errno = getattr(err, "errno", None)
    if errno == 13 or "Permission denied" in text:
        return (f"permission denied ({text}); add the user to the 'dialout' group "
                "(sudo usermod -aG dialout $USER, then log in again)")
    if errno == 16 or "busy" in text.lower() or "exclusively lock" in text.lower():
        return f"port busy ({text}); another program (screen, mpremote, a second gateway) holds it"
    if errno == 2 or "No such file" in text:
        return f"no such port ({text}); is the board plugged in?"
    return text


def _open_port(path: str, baudrate: int) -> serial.Serial:
    return serial.Serial(path, baudrate=baudrate, timeout=_READ_TIMEOUT_S, write_timeout=2.0,
                         exclusive=True)
