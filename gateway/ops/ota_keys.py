"""Ed25519 keys for OTA bundles: `sen ota keygen`, loading them, a key's id."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import GatewayError

KEY_FILE, PUB_FILE = "ota.key", "ota.pub"


class OtaError(GatewayError):
    """A key, a bundle or a transfer that cannot be used; ``reason`` is the code a board would
    report for it (DESIGN.md, OTA), the message says why in words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{message} [{reason}]")
        self.reason = reason


def key_id(pub: bytes) -> str:
    """A key's short name: the first 8 bytes of SHA-256 of its 32 raw bytes, in hex."""
    return hashlib.sha256(pub).hexdigest()[:16]


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keygen(out_dir: Path, *, force: bool = False) -> tuple[Path, Path]:
    """A new key pair: OUT/ota.key (PKCS#8 PEM, mode 0600, never leaves the build machine) and
    OUT/ota.pub (the 32 raw bytes as 64 hex digits and a newline: what a board is given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / KEY_FILE, out_dir / PUB_FILE
    if not force and (key_path.exists() or pub_path.exists()):
        raise OtaError("exists", f"{key_path} or {pub_path} exists already: a new key would orphan every board "
                                 "provisioned with the old one (--force to replace it)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if force:
        key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(key_path, 0o600)  # whatever the umask
    pub_path.write_text(raw_public(key).hex() + "\n")
    return key_path, pub_path


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise OtaError("bad_key", f"{path}: not a readable private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OtaError("bad_key", f"{path}: not an Ed25519 key")
    return key


def load_pub(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise OtaError("bad_key", f"{path}: cannot read the public key: {err}") from None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise OtaError("bad_key", f"{path}: a public key is 64 hex digits (what sen ota keygen writes)")
    return bytes.fromhex(text)
