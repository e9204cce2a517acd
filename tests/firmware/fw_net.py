"""Test helpers: an ack responder standing in for the gateway's end-to-end ack (paho: on
telemetry, record (dev, fid, boot, seq) and publish the retained ack, with its fid, by the
contiguous rule of tests/contract/ack.md), and a TCP proxy between board and broker that a
test can cut."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class AckResponder:
    """The gateway's ack rule (tests/contract/ack.md): per boot (device, fid, boot), fid the
    envelope's flash id (0 when it has none), the ack's seq is the contiguous high-water mark,
    the largest S with every seq 1..S received or below a `lo` the board sent; never lower than
    one already published; no ack of a flash's newest boot while S is 0. An envelope with `ob`
    = O (older boot O still in the board's outbox) is answered with the ack of boot O instead
    (seq possibly 0), as is an old-boot envelope while the newest boot's last envelope named
    it. Every ack carries the envelope's fid, as the gateway's do. `drop(dev, boot, n)`: the
    next n telemetry messages of that boot are lost on the way (not recorded, not acked).
    `fids[dev]`: the fid of the device's last envelope, which `seqs` and `twice` look at
    unless given another. `offline[dev]`: the live offline statuses of the device seen (a
    board's will, once the broker saw its connection end: see `wait_offline`)."""

    def __init__(self, host: str, port: int, site: str, client_id: str | None = None):
        self.got: Counter[tuple[str, int, int, int]] = Counter()  # (dev, fid, boot, seq)
        self.lo: dict[tuple[str, int, int], int] = {}
        self.acked: dict[tuple[str, int, int], int] = {}
        self.ob: dict[tuple[str, int], int] = {}  # (dev, fid) -> `ob` of its newest boot's last envelope
        self.fids: dict[str, int] = {}
        self.dropped: Counter[tuple[str, int]] = Counter()
        self.obs: list[tuple[str, int, int]] = []  # (dev, boot, ob) of every envelope with ob
        self.acks: list[dict[str, int]] = []  # every ack published, in order
        self.offline: Counter[str] = Counter()
        self._drop: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self.site = site
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"ackr-{site}",
                             clean_session=False)
        self.c.on_connect = lambda c, *a: c.subscribe([(f"sen/v1/{site}/+/telemetry", 1),
                                                       (f"sen/v1/{site}/+/status", 1)])
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()

    def drop(self, dev: str, boot: int, n: int) -> None:
        with self._lock:
            self._drop[(dev, boot)] += n

    def _contiguous(self, dev: str, fid: int, boot: int) -> int:
        key = (dev, fid, boot)
        s = max(self.acked.get(key, 0), self.lo.get(key, 1) - 1)
        while (dev, fid, boot, s + 1) in self.got:
            s += 1
        return s

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            if not msg.retain and json.loads(msg.payload).get("state") == "offline":
                with self._lock:
                    self.offline[msg.topic.split("/")[3]] += 1
            return
        env = json.loads(msg.payload)
        dev, boot, fid = env["dev"], env["boot"], env.get("fid", 0)
        ob = env.get("ob")
        with self._lock:
            if self._drop[(dev, boot)] > 0:
                self._drop[(dev, boot)] -= 1
                self.dropped[(dev, boot)] += 1
                return
            self.fids[dev] = fid
            for r in env["r"]:
                self.got[(dev, fid, boot, r["seq"])] += 1
            if isinstance(env.get("lo"), int):
                self.lo[(dev, fid, boot)] = max(self.lo.get((dev, fid, boot), 1), env["lo"])
            newest = max(b for d, f, b, _ in self.got if d == dev and f == fid)
            if boot == newest:
                self.ob[(dev, fid)] = ob if isinstance(ob, int) and ob < boot else boot
                if ob is not None:
                    self.obs.append((dev, boot, ob))
            elif self.ob.get((dev, fid)) != boot:
                return  # the retained ack stays on the newest boot (it covers older boots)
            target = self.ob[(dev, fid)] if boot == newest else boot
            s = self._contiguous(dev, fid, target)
            if s:
                self.acked[(dev, fid, target)] = s
            elif target == newest:
                return
            ack = {"fid": fid, "boot": target, "seq": s, "anchor": 0}
            self.acks.append(ack)
        client.publish(f"sen/v1/{self.site}/{dev}/ack", json.dumps(ack), qos=1, retain=True)

    def wait_offline(self, dev: str, seen: int, timeout: float) -> bool:
        """Wait until DEV's offline statuses exceed SEEN: its will, which the broker sends once it
        has read the killed board's connection to its end, so every PUBLISH the board had written
        before the kill has reached this client before it (one client: in order). False after
        TIMEOUT (a board cut before it ever connected has no will, and nothing on its way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.offline[dev] > seen:
                    return True
            time.sleep(0.01)
        return False

    def seqs(self, dev: str, boot: int, fid: int | None = None) -> list[int]:
        with self._lock:
            f = self.fids.get(dev, 0) if fid is None else fid
            return sorted(s for d, fi, b, s in self.got if d == dev and fi == f and b == boot)

    def twice(self, dev: str, fid: int | None = None) -> list[tuple[int, int]]:
        """(boot, seq) received more than once: harmless, but should stay rare."""
        with self._lock:
            f = self.fids.get(dev, 0) if fid is None else fid
            return sorted((b, s) for (d, fi, b, s), n in self.got.items() if d == dev and fi == f and n > 1)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class Proxy:
    """Forwards 127.0.0.1:<port> to the broker; cut() drops every open connection, and
    while `down` new connections are closed at once. While `silent` the link goes quiet:
    new connections are accepted but never reach the broker, and open ones carry nothing
    either way; the sockets stay up (a stuck link, which only the board's own timeouts can
    notice; a cut one ends in an error)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.down = False
        self.silent = False
        self.cuts = 0
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.ls.accept()
            except OSError:
                return
            if self.down:
                a.close()
                continue
            if self.silent:
                with self._lock:
                    self._socks.append(a)  # held open, never answered
                continue
            try:
                b = socket.create_connection(self.target)
            except OSError:
                a.close()
                continue
            with self._lock:
                self._socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def _pipe(self, x: socket.socket, y: socket.socket) -> None:
        try:
            while True:
                if self.silent:
                    time.sleep(0.02)
                    continue
                if not select.select([x], [], [], 0.05)[0]:
                    continue
                data = x.recv(4096)
                if not data:
                    break
                y.sendall(data)
        except (OSError, ValueError):  # closed by cut()
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.cuts += 1

    def close(self) -> None:
        self.down = True
        self.ls.close()
        self.cut()
