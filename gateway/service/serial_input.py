"""Serial input: SEN1 frames from USB-attached boards (pyserial), acks back on the same line.

    SerialInput(intake.put, "/dev/serial/by-id/*").start()  ...  .stop()

One reader thread per port. A scanner thread expands the paths/globs every
``scan_interval_s`` and opens what appeared (a board plugged in, or plugged again after an
unplug); a reader whose port vanishes or fails ends, and the port is opened again once it is
back. Each good frame becomes a :class:`~gateway.service.handler.Message` that carries what
the frame parse found (its topic and JSON object, so nothing is parsed twice) and is put into
the gateway's :class:`~gateway.service.intake.Intake`, the same group commit as MQTT. Once
its batch is committed, the ack goes back to the board as a ``SEN1 {"kind":"ack",...}``
frame; a frame that is never committed is never acked, and the board sends it again. A port
has at most ``_IN_FLIGHT`` frames waiting for their commit: a board that floods its line is
read no faster than the spool commits. Noise is skipped; bad frames and bad CRCs are counted.
A failing port (busy, no permission, random bytes) never stops the other ports. The port on
which each (site, device) was last heard is kept: :meth:`SerialInput.send` writes a frame to
that board (serial_bridge.py); ``on_status`` (when set) gets each status frame too,
``on_heard`` each (site, device) a good frame came from, and ``on_lost`` the devices last
heard on a port that was lost (not one closed by :meth:`SerialInput.stop`).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import serial  # type: ignore[import-untyped,unused-ignore]  # pyserial ships no types

from gateway.service.handler import Message
from gateway.service.serial_frame import MAX_LINE, Outcome, Parsed, ack_frame, parse_line

_LOGGER = logging.getLogger(__name__)

_READ_TIMEOUT_S = 0.2
_OPEN_FAIL_LOG_EVERY_S = 60.0
_GLOB_CHARS = frozenset("*?[")
_IN_FLIGHT = 32  # frames of one port waiting for their spool commit


class AckLike(Protocol):
    def payload(self) -> dict[str, int]: ...


Done = Callable[[AckLike | None], None]
PutFn = Callable[[Message, Done], None]
"""``Intake.put``: queue a message; ``done(ack)`` is called once its batch is committed."""


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
        self.window = threading.BoundedSemaphore(_IN_FLIGHT)
        self.write_lock = threading.Lock()  # acks are written from the intake thread

    def run(self) -> None:
        buffer = bytearray()
        discarding = lost = False
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
                    self.owner.line(self, line)
                if len(buffer) > MAX_LINE:
                    self.owner.count(self.path, Outcome.BAD_FRAME)
                    buffer.clear()
                    discarding = True
        except (serial.SerialException, OSError) as err:
            if not self.owner.stopping:
                _LOGGER.warning("serial port %s lost (%s); waiting for it to come back", self.path, err)
                self.owner.count(self.path, "disconnects")
                lost = True
        finally:
            try:
                self.port.close()
            except (serial.SerialException, OSError):
                pass
            self.owner.reader_ended(self.path, self, lost=lost)


class SerialInput:
    def __init__(self, put: PutFn, ports: str | Sequence[str], *, baudrate: int = 115200,
                 scan_interval_s: float = 1.0,
                 opener: Callable[[str, int], serial.Serial] | None = None) -> None:
        self._put = put
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
        self._where: dict[tuple[str, str], str] = {}  # (site, device) -> the port it was last heard on
        self.on_status: Callable[[str, bytes], None] | None = None  # (topic, the frame's JSON)
        self.on_heard: Callable[[str, str], None] | None = None  # (site, device)
        self.on_lost: Callable[[list[tuple[str, str]]], None] | None = None  # [(site, device)]

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

    def reader_ended(self, path: str, reader: _Reader, *, lost: bool = False) -> None:
        with self._lock:
            if self._readers.get(path) is reader:
                del self._readers[path]
            gone = [key for key, where in self._where.items() if where == path] if lost else []
        if gone and self.on_lost is not None:
            self.on_lost(gone)

    def line(self, reader: _Reader, raw: bytes) -> None:
        path = reader.path
        parsed = parse_line(raw)
        self.count(path, parsed.outcome)
        if parsed.outcome in (Outcome.BAD_FRAME, Outcome.BAD_CRC):
            _LOGGER.debug("%s: %s: %s", path, parsed.outcome, parsed.detail)
        if parsed.outcome not in (Outcome.TELEMETRY, Outcome.STATUS):
            return  # noise, bad lines, and frames meant for boards (ack, cmd, ota) echoed back
        topic = parsed.topic()
        if topic is not None:
            with self._lock:
                self._where[(topic.site, topic.device)] = path
            if topic.kind == "status" and self.on_status is not None:
                self.on_status(str(topic), parsed.payload)
            elif self.on_heard is not None:
                self.on_heard(topic.site, topic.device)
        while not reader.window.acquire(timeout=_READ_TIMEOUT_S):
            if self.stopping:
                return  # never committed, never acked: the board sends it again
        self._put(_message(path, parsed), lambda ack: self._done(reader, ack))

    def _done(self, reader: _Reader, ack: AckLike | None) -> None:
        """Called by the intake once the frame's batch is committed: the ack goes back."""
        reader.window.release()
        if ack is not None and self._write(reader, ack_frame(ack.payload()), "an ack"):
            self.count(reader.path, "acks_sent")

    def send(self, site: str, device: str, frame: bytes, what: str = "a frame") -> bool:
        """Write a frame line to the port on which (site, device) was last heard, if that port is
        still open; False when the device is on no port of this gateway or the write failed."""
        with self._lock:
            reader = self._readers.get(self._where.get((site, device), ""))  # None: that port is closed now
        return reader is not None and self._write(reader, frame, what)

    def _write(self, reader: _Reader, frame: bytes, what: str) -> bool:
        try:
            with reader.write_lock:
                reader.port.write(frame)
                reader.port.flush()
        except (serial.SerialException, OSError) as err:  # unplugged: the board sends again
            _LOGGER.info("could not send %s to %s (%s)", what, reader.path, err)
            return False
        return True

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


def _message(path: str, parsed: Parsed) -> Message:
    """The frame as the handler takes it: its topic and JSON object as parsed here, once."""
    topic = parsed.topic()
    # A frame without good names is kept by the handler as a dead letter (bad topic).
    text = str(topic) if topic else f"serial/{parsed.message.get('site')!s:.32}/{parsed.message.get('dev')!s:.32}"
    return Message(topic=text, payload=parsed.payload, received_ms=time.time_ns() // 1_000_000,
                   source=f"serial:{path}", parsed=topic, doc=parsed.message)
