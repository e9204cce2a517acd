"""The chunks of an OTA bundle on `sen/v1/{site}/{device}/ota` (DESIGN.md, OTA): framing,
and what a board's retained status says of a transfer."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from gateway.ops.ota import HEAD, manifest_length
from gateway.ops.ota_keys import OtaError

CHUNK_MAGIC = b"SOTA"
ABORT = 0xFFFFFFFF
DEFAULT_CHUNK, MAX_CHUNK = 1024, 2048


def transfer_id(bundle: bytes) -> bytes:
    """The 4-byte transfer id: the first 4 bytes of SHA-256 of the bundle's signature."""
    manifest_length(bundle[:12])
    return hashlib.sha256(bundle[12:HEAD]).digest()[:4]


def chunk(tid: bytes, offset: int, data: bytes) -> bytes:
    return CHUNK_MAGIC + tid + offset.to_bytes(4, "big") + data


def abort(tid: bytes) -> bytes:
    return chunk(tid, ABORT, b"")


def chunks(bundle: bytes, size: int = DEFAULT_CHUNK, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, message) for every chunk of the bundle from `start` on."""
    if not 1 <= size <= MAX_CHUNK:
        raise OtaError("bad_chunk", f"chunk size {size} is outside 1..{MAX_CHUNK} (a board takes 4 KiB messages)")
    tid = transfer_id(bundle)
    for offset in range(start, len(bundle), size):
        yield offset, chunk(tid, offset, bundle[offset:offset + size])


def parse_chunk(message: bytes) -> tuple[bytes, int, bytes]:
    """(transfer id, offset, data) of a chunk message; OtaError bad_chunk when it is none."""
    if len(message) < 12 or message[:4] != CHUNK_MAGIC:
        raise OtaError("bad_chunk", f"a chunk is SOTA, id, offset and data; got {len(message)} B")
    return message[4:8], int.from_bytes(message[8:12], "big"), message[12:]


def ota_status(status_payload: bytes) -> dict[str, Any] | None:
    """The `ota` member of a board's retained status, with its `ver`; None when it has none."""
    try:
        doc = json.loads(status_payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    ota = doc.get("ota")
    out: dict[str, Any] = dict(ota) if isinstance(ota, dict) else {}
    if "ver" in doc:
        out["running"] = doc["ver"]
    return out or None


@dataclass
class Target:
    """One board of a push, and what its retained status last said."""
    site: str
    device: str
    status: dict[str, Any] = field(default_factory=dict)
    sent: int = 0  # the next offset to send
    moved: float = 0.0  # when the board's `at` last moved (or we last went back to it)
    outcome: str | None = None  # None while under way; "ok ..." or "failed ..." at the end
    shown: str = ""

    @property
    def name(self) -> str:
        return f"{self.site}/{self.device}"

    def topic(self, kind: str) -> str:
        return f"sen/v1/{self.site}/{self.device}/{kind}"


def _started(host: str, port: int, username: str | None, password: str | None,
             on_connect: Callable[..., None], on_message: Callable[..., None]) -> Any:
    """A clean MQTT session to the broker, its network thread running (paho's Client)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, clean_session=True)
    if username:
        client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port)
    client.loop_start()
    return client


def _ours(status: dict[str, Any], tid: str) -> dict[str, Any]:
    """The status's `ota` member when it is about transfer tid, else {}."""
    o = status.get("ota")
    return o if isinstance(o, dict) and o.get("id") == tid else {}


def _decide(t: Target, tid: str, version: str, wait: bool) -> None:
    """The target's outcome from its status, once there is one."""
    o = _ours(t.status, tid)
    st = o.get("st")
    if st in ("refused", "rolled_back"):
        t.outcome = f"failed: {st} ({o.get('why', '?')})"
    elif st == "done" or (not o and t.status.get("ver") == version):
        t.outcome = f"ok: runs {version}"
    elif st in ("ready", "trial") and not wait:
        t.outcome = f"ok: {version} verified on the board, its trial next ({st})"


def push(bundle: bytes, targets: list[Target], *, host: str, port: int, out: TextIO, chunk_size: int = DEFAULT_CHUNK,
         window: int = 16, wait: bool = False, timeout_s: float = 600.0, stall_s: float = 10.0,
         username: str | None = None, password: str | None = None) -> int:
    """Send the bundle to every target over MQTT (DESIGN.md, OTA: chunks, resume, status).
    Keeps at most `window` chunks ahead of each board's reported `at`; goes back to `at` when
    it stops moving for stall_s or the board comes back online. Returns 0 when every board
    has it (verified and on trial; with wait: confirmed and running it), else 1."""
    import paho.mqtt.client as mqtt

    n = manifest_length(bundle[:12])
    version = str(json.loads(bundle[HEAD:HEAD + n])["version"])
    tid_raw = transfer_id(bundle)
    tid, size = tid_raw.hex(), len(bundle)
    list(chunks(bundle, chunk_size, size))  # checks the chunk size
    by_topic = {t.topic("status"): t for t in targets}
    lock = threading.Lock()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe([(topic, 1) for topic in by_topic])

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        t = by_topic.get(message.topic)
        try:
            doc = json.loads(message.payload)
        except ValueError:
            return
        if t is None or not isinstance(doc, dict):
            return
        with lock:
            before = t.status
            t.status = doc
            if t.outcome is None:  # at once: the next status (a reboot's will) may hide this one
                _decide(t, tid, version, wait)
            at, was_at = _ours(doc, tid).get("at"), _ours(before, tid).get("at")
            if at != was_at or (doc.get("state") == "online" and before.get("state") != "online"):
                t.moved = time.monotonic()
                if isinstance(at, int) and (doc.get("state") != before.get("state") or t.sent < at):
                    t.sent = at  # back online (or ahead of us): go on from where it stands

    client = _started(host, port, username, password, on_connect, on_message)
    deadline = time.monotonic() + timeout_s
    try:
        time.sleep(1.0)  # the retained statuses
        now = time.monotonic()
        for t in targets:
            t.moved = now
        while time.monotonic() < deadline:
            pending = []
            with lock:
                for t in targets:
                    if t.outcome is None:
                        _decide(t, tid, version, wait)
                    if t.outcome is not None:
                        continue
                    o = _ours(t.status, tid)
                    at = int(o.get("at", 0)) if o.get("st") == "recv" else 0
                    if time.monotonic() - t.moved > stall_s:
                        t.sent, t.moved = at, time.monotonic()  # stalled: go back to where it stands
                    while t.sent < size and t.sent < at + window * chunk_size:
                        pending.append((t.topic("ota"), chunk(tid_raw, t.sent, bundle[t.sent:t.sent + chunk_size])))
                        t.sent += chunk_size
                    _show(t, o, size, out)
            for topic, message in pending:
                client.publish(topic, message, qos=1).wait_for_publish(timeout=30)
            if all(t.outcome is not None for t in targets):
                break
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    for t in targets:
        t.outcome = t.outcome or f"failed: timed out after {timeout_s:.0f} s"
        print(f"{t.name}: {t.outcome}", file=out, flush=True)
    return 0 if all(t.outcome.startswith("ok") for t in targets if t.outcome) else 1


def _show(t: Target, o: dict[str, Any], size: int, out: TextIO) -> None:
    at = int(o.get("at", 0))
    bar = "#" * (20 * at // size)
    line = f"{t.name}: [{bar:<20}] {100 * at // size:3d}% {at:,}/{size:,} B {o.get('st', 'waiting')}"
    if line != t.shown:
        t.shown = line
        print(line, file=out, flush=True)


def rollout(bundle: bytes, targets: list[Target], *, canary: int, out: TextIO, **kw: Any) -> int:
    """`--canary N`: the first N boards get the bundle and must come back running it (push with
    wait) before the others get it; a canary that fails stops the rollout there."""
    first, rest = targets[:canary], targets[canary:]
    print(f"canary: {', '.join(t.name for t in first)}", file=out, flush=True)
    if push(bundle, first, out=out, **{**kw, "wait": True}) != 0:
        print(f"a canary failed: {len(rest)} boards left as they are", file=out, flush=True)
        return 1
    return push(bundle, rest, out=out, **kw) if rest else 0


def statuses(host: str, port: int, *, site: str = "+", device: str = "+", listen_s: float = 1.5,
             username: str | None = None, password: str | None = None) -> dict[str, dict[str, Any]]:
    """Every board's retained status, by "site/device"."""
    import paho.mqtt.client as mqtt

    seen: dict[str, dict[str, Any]] = {}

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(f"sen/v1/{site}/{device}/status", qos=1)

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(doc, dict):
            seen["/".join(message.topic.split("/")[2:4])] = doc

    client = _started(host, port, username, password, on_connect, on_message)
    try:
        time.sleep(listen_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def board_status(host: str, port: int, *, out: TextIO, **kw: Any) -> int:
    """`sen ota status`: every board's retained status, its version and its last OTA."""
    seen = statuses(host, port, **kw)
    print(f"{'board':<32} {'state':<9} {'ver':<10} ota", file=out)
    for name in sorted(seen):
        doc = seen[name]
        o = doc.get("ota") if isinstance(doc.get("ota"), dict) else None
        ota = "-" if o is None else (f"{o.get('ver', '?')} {o.get('st', '?')} {o.get('at', 0):,}/{o.get('of', 0):,} B"
                                     + (f" ({o['why']})" if o.get("why") else ""))
        print(f"{name:<32} {doc.get('state', '?')!s:<9} {doc.get('ver', '-')!s:<10} {ota}", file=out)
    if not seen:
        print("no board status seen (is --mqtt the boards' broker?)", file=out)
    return 0
