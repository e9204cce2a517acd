"""InfluxV1's writes: kept connections (one per write in flight), a closed one replaced once,
gzip by InfluxDB's host.

A small HTTP/1.1 server on loopback stands in for InfluxDB's ``/write`` here (what it answers
is InfluxDB's, as the integration tests see it): these tests are about the connection, which
the real server does not let a test close at will.
"""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ingest.errors import InfluxUnavailable
from ingest.influx_v1 import InfluxV1, compress_by_default


_made: list[InfluxV1] = []  # closed when the test ends (a kept connection left open warns)


def _sink(url: str, **options: Any) -> InfluxV1:
    _made.append(InfluxV1(url, database="sen", **options))
    return _made[-1]


@dataclass
class _Seen:
    bodies: list[bytes] = field(default_factory=list)
    encodings: list[str | None] = field(default_factory=list)
    connections: int = 0
    drop_after_answer: bool = False  # close each connection after its answer, without saying so
    status: int = 204
    together: threading.Barrier | None = None  # answer no write before this many are in


@pytest.fixture
def server() -> Iterator[tuple[str, _Seen]]:
    seen = _Seen()
    _made.clear()

    class _Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections stay open unless closed

        def setup(self) -> None:
            super().setup()
            seen.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if seen.together is not None:
                seen.together.wait(5)
            encoding = self.headers.get("Content-Encoding")
            seen.encodings.append(encoding)
            seen.bodies.append(gzip.decompress(body) if encoding == "gzip" else body)
            answer = b"" if seen.status == 204 else b'{"error":"overloaded"}'
            self.send_response(seen.status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            self.close_connection = seen.drop_after_answer

        def log_message(self, format: str, *args: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        for sink in _made:
            sink.close()
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(("host", "compress"), [
    ("localhost", False), ("LOCALHOST", False), ("influx.localhost", False), ("127.0.0.1", False),
    ("127.8.9.10", False), ("::1", False), ("[::1]", False),
    ("influxdb", True), ("10.0.0.5", True), ("192.168.1.20", True), ("fe80::1", True), ("db.example.vn", True),
])
def test_gzip_by_default_only_when_influxdb_is_another_machine(host: str, compress: bool) -> None:
    assert compress_by_default(host) is compress


def test_writes_share_one_connection_and_go_uncompressed_on_loopback(server: tuple[str, _Seen]) -> None:
    url, seen = server
    sink = _sink(url)
    for n in range(3):
        sink.write(f"m v={n}i".encode())
    assert seen.bodies == [b"m v=0i", b"m v=1i", b"m v=2i"]
    assert seen.encodings == [None, None, None]
    assert seen.connections == sink.connections == 1
    sink.close()
    sink.write(b"m v=3i")  # closed: the next write opens a connection again
    assert seen.connections == 2 and seen.bodies[-1] == b"m v=3i"


def test_gzip_when_asked(server: tuple[str, _Seen]) -> None:
    url, seen = server
    _sink(url, compress=True).write(b"m v=1i\nm v=2i")
    assert seen.encodings == ["gzip"] and seen.bodies == [b"m v=1i\nm v=2i"]


def test_a_connection_the_server_closed_is_replaced_and_the_write_goes_once_more(server: tuple[str, _Seen]) -> None:
    url, seen = server
    seen.drop_after_answer = True
    sink = _sink(url)
    sink.write(b"m v=1i")
    sink.write(b"m v=2i")  # on the closed connection first: it fails before any answer, then goes again
    sink.write(b"m v=3i")
    assert seen.bodies == [b"m v=1i", b"m v=2i", b"m v=3i"]
    assert seen.connections == sink.connections == 3


def test_no_server_is_unavailable_at_once_not_a_loop(server: tuple[str, _Seen]) -> None:
    url, _ = server
    sink = _sink("http://127.0.0.1:9", timeout_s=2.0)  # discard port: nothing listens
    with pytest.raises(InfluxUnavailable, match="unreachable"):
        sink.write(b"m v=1i")
    assert sink.connections == 1


def test_an_error_answer_keeps_the_connection(server: tuple[str, _Seen]) -> None:
    url, seen = server
    seen.status = 503
    sink = _sink(url)
    for _ in range(2):
        with pytest.raises(InfluxUnavailable, match="HTTP 503"):
            sink.write(b"m v=1i")
    seen.status = 204
    sink.write(b"m v=2i")
    assert len(seen.bodies) == 3 and seen.connections == sink.connections == 1


def test_writes_in_flight_together_each_keep_a_connection(server: tuple[str, _Seen]) -> None:
    # The writer's lanes (ingest.writer, in_flight=2) write at once: neither waits for the
    # other's answer, and both connections are kept for the writes after.
    url, seen = server
    seen.together = threading.Barrier(2)
    sink = _sink(url)
    lanes = [threading.Thread(target=sink.write, args=(f"m v={n}i".encode(),)) for n in range(2)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join(10)
    assert sorted(seen.bodies) == [b"m v=0i", b"m v=1i"] and not seen.together.broken
    seen.together = None
    for n in range(2, 6):
        sink.write(f"m v={n}i".encode())
    assert len(seen.bodies) == 6 and seen.connections == sink.connections == 2
