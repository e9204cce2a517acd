"""`sen broker tls`: a local certificate authority and a server certificate for Mosquitto.

Made with the ``openssl`` command (on every Debian and Raspberry Pi OS; nothing is
downloaded). Keys are ECDSA P-256, which the ESP32's mbedTLS handles well. Files in OUT::

    ca.key      the CA's private key (mode 0600, root's): the operator's, never the broker's;
                best kept off the broker (``ca_key``/``--ca-key`` names it where it is kept)
    ca.crt      the CA certificate: give it to the gateway (mqtt.ca_file)
    ca.der      the same in DER, for the boards' flash (firmware broker.ca)
    server.key  the broker's key (mode 0640: give its group to the broker's user)
    server.crt  the broker's certificate, for every --host name given (DNS names and IPs)

An existing CA is kept (so boards keep trusting it) unless ``new_ca`` is set; the server
certificate is always made anew. A CA certificate without its key is refused rather than
replaced: every board trusts that CA.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.ops.broker_accounts import BrokerSecurityError

_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise BrokerSecurityError("the openssl command is missing: apt-get install openssl")
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise BrokerSecurityError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def _san(hosts: list[str]) -> str:
    names = []
    for host in hosts:
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def make_tls(out: Path, *, hosts: list[str], days: int = 825, new_ca: bool = False,
             ca_key: Path | None = None) -> dict[str, Path]:
    """Make (or keep) the CA and issue a server certificate for ``hosts``; returns the files.
    ``ca_key``: the CA's key where the operator keeps it (default ``OUT/ca.key``)."""
    if not hosts:
        raise BrokerSecurityError("give at least one --host: the name or address boards connect to")
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("ca.key", "ca.crt", "ca.der", "server.key", "server.crt")}
    if ca_key is not None:
        files["ca.key"] = ca_key
    if files["ca.crt"].exists() and not files["ca.key"].exists() and not new_ca:
        raise BrokerSecurityError(
            f"{files['ca.crt']} is there but not its key {files['ca.key']}: give the CA key with --ca-key FILE "
            "(boards trust this CA), or --new-ca to replace the CA (every board then needs the new ca.der)")
    if new_ca or not (files["ca.key"].exists() and files["ca.crt"].exists()):
        _openssl("req", "-x509", "-new", *_CURVE, "-keyout", str(files["ca.key"]), "-out", str(files["ca.crt"]),
                 "-days", str(days), "-subj", "/O=Sen/CN=Sen local CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        files["ca.key"].chmod(0o600)
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "server.csr", Path(tmp) / "server.ext"
        ext.write_text(f"subjectAltName={_san(hosts)}\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-new", *_CURVE, "-keyout", str(files["server.key"]), "-out", str(csr),
                 "-subj", f"/O=Sen/CN={hosts[0]}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca.crt"]), "-CAkey", str(files["ca.key"]),
                 "-CAcreateserial", "-out", str(files["server.crt"]), "-days", str(days), "-sha256",
                 "-extfile", str(ext))
    # Boards take the CA in DER: MicroPython's TLS (mbedtls) on the boards reads that form.
    _openssl("x509", "-in", str(files["ca.crt"]), "-outform", "DER", "-out", str(files["ca.der"]))
    files["ca.der"].chmod(0o644)
    files["server.key"].chmod(0o640)
    files["ca.crt"].chmod(0o644)
    files["server.crt"].chmod(0o644)
    serial = out / "ca.srl"
    if serial.exists():
        serial.chmod(0o600)
    return files
