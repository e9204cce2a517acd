"""The chunk messages of the `ota` topic (gateway/ops/ota_push.py, DESIGN.md OTA): they cover
the bundle exactly, carry its transfer id and offset, a truncated or foreign message is
refused (bad_chunk), and a board's status decides a push's outcome."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.ops import ota, ota_keys
from gateway.ops.ota_keys import OtaError
from gateway.ops.ota_push import (
    ABORT,
    MAX_CHUNK,
    Target,
    _decide,
    abort,
    chunks,
    ota_status,
    parse_chunk,
    transfer_id,
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("fw")
    (root / "lib").mkdir()
    (root / "main.py").write_text("import app\n")
    (root / "lib" / "app.py").write_text("x = 1\n" * 500)
    keys = tmp_path_factory.mktemp("keys")
    ota_keys.keygen(keys)
    out = Path(root / "b.senota")
    ota.build(ota_keys.load_key(keys / "ota.key"), version="1.5.0", boards=["sim"], out=out, firmware_dir=root)
    return out.read_bytes()


@pytest.mark.parametrize("size", [1, 100, 1024, MAX_CHUNK])
def test_chunks_cover_the_bundle_exactly(bundle: bytes, size: int) -> None:
    tid = transfer_id(bundle)
    assert tid == hashlib.sha256(bundle[12:76]).digest()[:4]
    got = bytearray()
    for offset, message in chunks(bundle, size):
        t, off, data = parse_chunk(message)
        assert (t, off) == (tid, offset) and 1 <= len(data) <= size
        assert len(message) == 12 + len(data)
        got += data
    assert bytes(got) == bundle
    half = len(bundle) // 2
    assert [o for o, _ in chunks(bundle, size, start=half)][0] == half


def test_bad_chunk_sizes_and_messages_are_refused(bundle: bytes) -> None:
    for size in (0, MAX_CHUNK + 1):
        with pytest.raises(OtaError, match="chunk size") as caught:
            list(chunks(bundle, size))
        assert caught.value.reason == "bad_chunk"
    _, first = next(chunks(bundle))
    for bad in (first[:11], b"XOTA" + first[4:], b""):
        with pytest.raises(OtaError) as refused:
            parse_chunk(bad)
        assert refused.value.reason == "bad_chunk"
    assert parse_chunk(abort(transfer_id(bundle)))[1:] == (ABORT, b"")
    with pytest.raises(OtaError):
        transfer_id(b"PK\x03\x04" + bundle)


def test_a_status_decides_the_outcome() -> None:
    tid = "1a2b3c4d"

    def outcome(status: dict[str, object], wait: bool = False) -> str | None:
        t = Target("lab", "d1", status=dict(status))
        _decide(t, tid, "1.5.0", wait)
        return t.outcome

    recv = {"id": tid, "ver": "1.5.0", "st": "recv", "at": 10, "of": 100}
    assert outcome({"state": "online", "ver": "1.4.0", "ota": recv}) is None
    assert outcome({"ver": "1.4.0", "ota": {**recv, "st": "ready"}}) == \
        "ok: 1.5.0 verified on the board, its trial next (ready)"
    assert outcome({"ver": "1.4.0", "ota": {**recv, "st": "ready"}}, wait=True) is None
    assert outcome({"ver": "1.5.0", "ota": {**recv, "st": "done"}}, wait=True) == "ok: runs 1.5.0"
    assert outcome({"ver": "1.4.0", "ota": {**recv, "st": "refused", "why": "bad_signature"}}) == \
        "failed: refused (bad_signature)"
    assert outcome({"ver": "1.4.0", "ota": {**recv, "st": "rolled_back", "why": "trial_failed"}}, wait=True) == \
        "failed: rolled_back (trial_failed)"
    assert outcome({"ver": "1.4.0", "ota": {**recv, "id": "ffffffff", "st": "refused"}}) is None  # another push's
    assert outcome({"state": "online", "ver": "1.5.0"}) == "ok: runs 1.5.0"
    assert ota_status(b'{"state":"online","ver":"1.4.0","ota":{"id":"1a2b3c4d","st":"recv"}}') == \
        {"id": "1a2b3c4d", "st": "recv", "running": "1.4.0"}
    assert ota_status(b"not json") is None and ota_status(b'{"state":"online"}') is None
