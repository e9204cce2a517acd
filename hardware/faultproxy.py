"""A TCP fault proxy between one board and the broker: pass, cut or stall the link.

    proxy = FaultProxy(("127.0.0.1", 1883)); proxy.start()   # board connects to proxy.port
    proxy.cut()     # drop every connection and refuse new ones (cable out, WiFi gone)
    proxy.stall()   # keep connections open but move no bytes (a black-holed route)
    proxy.heal()    # back to normal

A broker partition is :meth:`cut` on every board's proxy. Only loopback addresses are used.
"""

from __future__ import annotations

import logging
import select
import socket
import threading

_LOGGER = logging.getLogger(__name__)

PASS, CUT, STALL = "pass", "cut", "stall"
_TICK_S = 0.05


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.upstream = upstream
        self._server = socket.create_server((listen_host, listen_port))
        self._server.setblocking(False)
        self.port: int = self._server.getsockname()[1]
        self.mode = PASS
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.port}", daemon=True)
        self.connections = 0

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._drop_all()
        self._server.close()

    def cut(self) -> None:
        self._set(CUT)
        self._drop_all()

    def stall(self) -> None:
        self._set(STALL)

    def heal(self) -> None:
        self._set(PASS)

    def _set(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
        _LOGGER.info("fault proxy :%d -> %s:%d now %s", self.port, *self.upstream, mode)

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                s.close()

    def _accept(self) -> None:
        try:
            client, _ = self._server.accept()
        except BlockingIOError:
            return
        with self._lock:
            mode = self.mode
        if mode == CUT:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=2)
        except OSError as err:
            _LOGGER.debug("upstream %s:%d unreachable: %s", *self.upstream, err)
            client.close()
            return
        self.connections += 1
        with self._lock:
            self._pairs.append((client, upstream))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pairs = list(self._pairs)
                moving = self.mode == PASS
            sockets = [self._server] + ([s for pair in pairs for s in pair] if moving else [])
            try:
                readable, _, _ = select.select(sockets, [], [], _TICK_S)
            except (OSError, ValueError):
                continue  # a socket closed under us by cut()
            if self._server in readable:
                self._accept()
            for a, b in pairs:
                for src, dst in ((a, b), (b, a)):
                    if src in readable and not self._forward(src, dst):
                        self._close_pair(a, b)
                        break

    def _forward(self, src: socket.socket, dst: socket.socket) -> bool:
        try:
            data = src.recv(65536)
            if not data:
                return False
            dst.sendall(data)
        except OSError:
            return False
        self._moved(dst, len(data))
        return True

    def _moved(self, dst: socket.socket, n: int) -> None:
        """N bytes went to DST (a subclass counts them)."""

    def _close_pair(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            if (a, b) in self._pairs:
                self._pairs.remove((a, b))
        a.close()
        b.close()
