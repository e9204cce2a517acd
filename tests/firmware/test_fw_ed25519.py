"""The board's Ed25519 verifier and its SHA-512 (firmware/lib/ed25519.py) on the real
MicroPython VM: RFC 8032's test vectors (section 7.1: TEST 1, 2, 3, 1024 and SHA(abc), in
rfc8032_ed25519.json, each re-checked against the `cryptography` package here), SHA-512
against hashlib at every length around the block and padding edges, and the refusals: a
changed message, a flipped bit in R or S, S + L (non-canonical), another key, a public key
that is no point, wrong lengths. Run at -X heapsize=64K, the firmware's memory target."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.firmware

HERE = Path(__file__).resolve().parent
LIB = HERE.parents[1] / "firmware" / "lib"
VECTORS = json.loads((HERE / "rfc8032_ed25519.json").read_text())["vectors"]
L = (1 << 252) + 27742317777372353535851937790883648493

# Runs inside MicroPython: argv[1] = lib dir, argv[2] = a JSON file of cases; prints one line
# per case: "name True|False" (verify) or "name <hex digest>" (sha512).
_RUNNER = """
import sys, json, binascii
sys.path.insert(0, sys.argv[1])
import ed25519
u = binascii.unhexlify
with open(sys.argv[2]) as f:
    cases = json.load(f)
for c in cases:
    if c["op"] == "sha512":
        print(c["name"], binascii.hexlify(ed25519.SHA512(u(c["message"])).digest()).decode())
    else:
        print(c["name"], ed25519.verify(u(c["public"]), u(c["message"]), u(c["signature"])))
"""


def _run(micropython_bin: str, cases: list[dict[str, Any]], tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "runner.py"
    script.write_text(_RUNNER)
    data = tmp_path / "cases.json"
    data.write_text(json.dumps(cases))
    done = subprocess.run([micropython_bin, "-X", "heapsize=64K", str(script), str(LIB), str(data)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, result = line.rpartition(" ")
        lines[name] = result
    return lines


def test_vectors_are_rfc8032s() -> None:
    # The JSON file is checked against an independent implementation, so a typo in it cannot
    # make the firmware's verifier look right.
    assert [v["name"] for v in VECTORS] == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
    assert len(bytes.fromhex(VECTORS[3]["message"])) == 1023
    for v in VECTORS:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["secret"]))
        pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert pub.hex() == v["public"]
        assert key.sign(bytes.fromhex(v["message"])).hex() == v["signature"]


def test_sha512_matches_hashlib(micropython_bin: str, tmp_path: Path) -> None:
    lengths = [0, 1, 3, 55, 56, 63, 64, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000, 1023]
    cases = [{"op": "sha512", "name": f"len{n}", "message": bytes((i * 7 + n) & 255 for i in range(n)).hex()}
             for n in lengths]
    cases.append({"op": "sha512", "name": "abc", "message": b"abc".hex()})
    got = _run(micropython_bin, cases, tmp_path)
    for c in cases:
        assert got[c["name"]] == hashlib.sha512(bytes.fromhex(c["message"])).hexdigest(), c["name"]
    assert got["abc"] == ("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                          "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")  # FIPS 180-2


def _flip(hexstr: str, byte: int, bit: int = 0) -> str:
    raw = bytearray.fromhex(hexstr)
    raw[byte] ^= 1 << bit
    return raw.hex()


def test_rfc8032_vectors_and_refusals(micropython_bin: str, tmp_path: Path) -> None:
    cases: list[dict[str, Any]] = []
    expect: dict[str, str] = {}

    def case(name: str, public: str, message: str, signature: str, ok: bool) -> None:
        cases.append({"op": "verify", "name": name, "public": public, "message": message, "signature": signature})
        expect[name] = str(ok)

    for v in VECTORS:
        n, pub, msg, sig = v["name"].replace(" ", "_"), v["public"], v["message"], v["signature"]
        case(n, pub, msg, sig, True)
        case(n + "/message_changed", pub, (msg or "00")[:-2] + ("01" if msg[-2:] != "01" else "02"), sig, False)
        case(n + "/R_flipped", pub, msg, _flip(sig, 0), False)
        case(n + "/S_flipped", pub, msg, _flip(sig, 40), False)
        s_plus_l = (int.from_bytes(bytes.fromhex(sig[64:]), "little") + L).to_bytes(32, "little").hex()
        case(n + "/S_plus_L", pub, msg, sig[:64] + s_plus_l, False)
    other = VECTORS[1]["public"]
    case("other_key", other, VECTORS[0]["message"], VECTORS[0]["signature"], False)
    # y = 2 has no x on the curve; y = p (non-canonical) is refused before any arithmetic.
    case("not_a_point", (2).to_bytes(32, "little").hex(), "", VECTORS[0]["signature"], False)
    case("y_not_canonical", ((1 << 255) - 19).to_bytes(32, "little").hex(), "", VECTORS[0]["signature"], False)
    case("short_signature", VECTORS[0]["public"], "", VECTORS[0]["signature"][:-2], False)
    case("short_key", VECTORS[0]["public"][:-2], "", VECTORS[0]["signature"], False)
    got = _run(micropython_bin, cases, tmp_path)
    assert got == expect
