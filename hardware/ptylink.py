"""A virtual board's USB serial port: a pseudo-terminal pair and a small relay.

The board process's stdout and stdin are pipes to the relay; the relay copies board output
to the pty's master side (and to the board's console log) and whatever arrives on the master
to the board's stdin. Like a USB CDC port that sees the host's DTR, the relay holds board
output while no program has the port open (the master reports a hang-up), and starts
sending a moment after one opens it (pyserial flushes the input buffer as it opens). The slave side is
the "USB port": its path (``/dev/pts/N``) is kept
under a stable symlink such as ``.sen/dev/ttySIM0``, which pyserial, ``screen`` and the
gateway open like ``/dev/ttyUSB0``.

:meth:`PtyLink.unplug` closes the pair (an open reader gets an I/O error, as when a cable is
pulled) and removes the symlink; :meth:`PtyLink.plug` makes a new pair and points the symlink
at it. While unplugged, board output is dropped, as a USB CDC port with no host drops it.
:meth:`PtyLink.inject` puts raw bytes on the line towards the host (garbage, half frames).
With ``baud`` the relay paces board output to that line speed (8N1: 10 bits a byte), as a
USB-UART bridge at that speed would; without it the pty is as fast as the machine.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import BinaryIO

_LOGGER = logging.getLogger(__name__)

_MAX_PENDING = 256 * 1024  # bytes held for a host that does not read; beyond this, dropped
_TICK_S = 0.05
_HOST_SETTLE_S = 0.15  # after a host opens the port, before bytes flow (pyserial's open flushes)


class PtyLink:
    def __init__(self, link: Path, *, console: BinaryIO | None = None, baud: int | None = None) -> None:
        self.link = link
        self.console = console
        self.bytes_per_s = baud / 10 if baud else None
        self._budget = 0.0  # bytes the line may carry now (paced output only)
        self._budget_at = time.monotonic()
        self.sent = 0  # bytes delivered to the host side
        self._lock = threading.Lock()
        self._master: int | None = None
        self._host_since: float | None = None  # when a program opened the port, None while none has
        self._tty = ""
        self._to_host = bytearray()
        self._to_board = bytearray()
        self._board_out: int | None = None
        self._board_in: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    @property
    def tty(self) -> str:
        """The slave's device path (empty while unplugged)."""
        return self._tty

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def start(self) -> None:
        self.plug()
        self._thread = threading.Thread(target=self._run, name=f"pty-{self.link.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.unplug()
        self.detach()

    def plug(self) -> str:
        with self._lock:
            if self._master is not None:
                return self._tty
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: bytes pass as they are
            self._tty = os.ttyname(slave)
            os.close(slave)  # the host opens it by path; until then the master reports a hang-up
            os.set_blocking(master, False)
            self._master = master
            self._host_since = None
            self._to_host.clear()
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._tty)
            tmp.replace(self.link)
        _LOGGER.info("serial port %s -> %s plugged", self.link, self._tty)
        return self._tty

    def unplug(self) -> None:
        with self._lock:
            fds = [fd for fd in (self._master,) if fd is not None]
            self._master = None
            self._tty = ""
            self.link.unlink(missing_ok=True)
        for fd in fds:
            os.close(fd)
        if fds:
            _LOGGER.info("serial port %s unplugged", self.link)

    def attach(self, board_stdout: int, board_stdin: int) -> None:
        """Wire a (new) board process: its stdout pipe's read end and stdin pipe's write end."""
        os.set_blocking(board_stdin, False)
        with self._lock:
            self._board_out, self._board_in = board_stdout, board_stdin
            self._to_board.clear()

    def detach(self) -> None:
        with self._lock:
            self._board_out = self._board_in = None

    def inject(self, data: bytes) -> None:
        """Raw bytes on the line towards the host, between whole lines of board output."""
        with self._lock:
            if self._master is not None:
                self._to_host += data

    # -- relay ----------------------------------------------------------------------------
    # One lock guards every descriptor: the relay holds it across select and copy (at most
    # _TICK_S), so plug/unplug/attach never close a descriptor the relay is using.
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                try:
                    self._step()
                except OSError as err:
                    _LOGGER.debug("relay %s: %s", self.link, err)
            time.sleep(0)  # let plug/unplug/inject take the lock

    def _host_ready(self, master: int | None) -> bool:
        """True when a program has had the port open for a moment (no hang-up on the master)."""
        if master is None:
            return False
        poller = select.poll()
        poller.register(master, select.POLLIN)
        hung_up = any(ev & select.POLLHUP for _, ev in poller.poll(0))
        if hung_up:
            self._host_since = None
            return False
        now = time.monotonic()
        if self._host_since is None:
            self._host_since = now
        return now - self._host_since >= _HOST_SETTLE_S

    def _line_room(self) -> int:
        """How many bytes may go to the host now: all of them, or what the paced line allows."""
        if self.bytes_per_s is None:
            return 4096
        now = time.monotonic()
        # At most ~50 ms of line time saved up: a paced line has no burst above its speed.
        self._budget = min(self._budget + (now - self._budget_at) * self.bytes_per_s, self.bytes_per_s * 0.05)
        self._budget_at = now
        return int(self._budget)

    def _step(self) -> None:
        master, out, inp = self._master, self._board_out, self._board_in
        if not self._host_ready(master):
            master = None  # hold output (and read nothing) until a host has the port open
        readers = [fd for fd in (master, out) if fd is not None]
        room = self._line_room()
        writers = [fd for fd, want in ((master, self._to_host and room), (inp, self._to_board))
                   if fd is not None and want]
        if not readers and not writers or (master is None and out is None):
            self._lock.release()
            try:
                time.sleep(_TICK_S)
            finally:
                self._lock.acquire()
            return
        readable, writable, _ = select.select(readers, writers, [], _TICK_S)
        if out is not None and out in readable:
            data = os.read(out, 65536)
            if not data:  # the board process ended (power cut, exit)
                self._board_out = None
            else:
                if self.console is not None:
                    self.console.write(data)
                    self.console.flush()
                if self._master is None or len(self._to_host) > _MAX_PENDING:
                    self.dropped += len(data)
                else:
                    self._to_host += data
        if master is not None and master in readable:
            data = os.read(master, 65536)
            if len(self._to_board) < _MAX_PENDING:
                self._to_board += data
        if master is not None and master in writable:
            written = os.write(master, bytes(self._to_host[:min(4096, room)]))
            del self._to_host[:written]
            self.sent += written
            self._budget -= written
        if inp is not None and inp in writable:
            try:
                del self._to_board[:os.write(inp, bytes(self._to_board[:4096]))]
            except BrokenPipeError:
                self._to_board.clear()
                self._board_in = None
