"""The chunks of an OTA bundle on `sen/v1/{site}/{device}/ota` (DESIGN.md, OTA): framing,
and what a board's retained status says of a transfer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

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
