"""The secured broker, against a real Mosquitto started with the files `sen broker` writes:
per-device accounts, the ACL, no anonymous clients, and a TLS listener with a local CA."""

from __future__ import annotations

import queue
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_mqtt import Client

from gateway.ops.broker_accounts import GATEWAY_USER, Account, BrokerDir, acl_text, device_user, hash_password
from gateway.cli import main
from gateway.devstack import Mosquitto, free_port

pytestmark = pytest.mark.integration
QUIET_S = 0.5  # how long "never arrives" is watched after a later message did arrive


@dataclass
class Secured:
    broker: Mosquitto
    tls_port: int
    ca: Path
    passwords: dict[str, str]

    def client(self, user: str | None, *, password: str | None = None, tls: bool = False) -> Client:
        pw = password if password is not None else self.passwords.get(user or "")
        return Client(self.tls_port if tls else self.broker.port, user=user, password=pw,
                      tls=self.ca if tls else None)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secured")
    broker_dir = base / "broker"
    # Through the command line, as an operator would (mosquitto_passwd writes the hashes)...
    assert main(["broker", "add-gateway", "--dir", str(broker_dir)]) == 0
    for device in ("dev-a", "dev-b"):
        assert main(["broker", "add-device", "--dir", str(broker_dir), "--site", "lab", "--device", device]) == 0
    assert main(["broker", "tls", "--out", str(base / "tls"), "--host", "127.0.0.1", "--host", "localhost"]) == 0
    # ...and one account hashed by our own code, which the broker must accept alike.
    BrokerDir(broker_dir, passwd_tool=None).add(Account(user="lab.dev-c", kind="device", site="lab",
                                                        device="dev-c"))
    store = BrokerDir(broker_dir)
    passwords = {a.user: store.secret_path(a.user).read_text().strip() for a in store.accounts()}
    tls_port = free_port()
    tls = base / "tls"
    broker = Mosquitto(base / "mosquitto", anonymous=False, extra_conf=[
        f"password_file {broker_dir / 'passwd'}", f"acl_file {broker_dir / 'acl'}",
        f"listener {tls_port} 127.0.0.1", f"cafile {tls / 'ca.crt'}", f"certfile {tls / 'server.crt'}",
        f"keyfile {tls / 'server.key'}"])
    broker.start()
    yield Secured(broker, tls_port, tls / "ca.crt", passwords)
    broker.stop()


def test_anonymous_and_wrong_passwords_are_refused(secured: Secured) -> None:
    for client in (secured.client(None), secured.client("lab.dev-a", password="wrong"),
                   secured.client("nobody", password="x")):
        assert not client.connected, client.reason
        assert client.reason is not None and "authori" in client.reason.lower()
        client.close()


def test_every_account_connects_including_the_python_hashed_one(secured: Secured) -> None:
    assert set(secured.passwords) == {GATEWAY_USER, "lab.dev-a", "lab.dev-b", "lab.dev-c"}
    for user in secured.passwords:
        client = secured.client(user)
        assert client.connected, (user, client.reason)
        client.close()


def test_a_device_cannot_publish_as_another_device(secured: Secured) -> None:
    gateway, dev_a, dev_b = (secured.client(u) for u in (GATEWAY_USER, "lab.dev-a", "lab.dev-b"))
    try:
        gateway.subscribe("sen/v1/+/+/telemetry")
        dev_a.publish("sen/v1/lab/dev-b/telemetry", b"forged by a")   # refused by the ACL
        dev_a.publish("sen/v1/lab/dev-a/status", b"not telemetry")    # allowed, but not subscribed
        dev_a.publish("sen/v1/lab/dev-a/telemetry", b"a's own")
        dev_b.publish("sen/v1/lab/dev-b/telemetry", b"b's own")
        got = {gateway.next_message(), gateway.next_message()}
        assert got == {("sen/v1/lab/dev-a/telemetry", b"a's own"), ("sen/v1/lab/dev-b/telemetry", b"b's own")}
        with pytest.raises(queue.Empty):
            print("unexpected:", gateway.next_message(timeout=QUIET_S))
    finally:
        for c in (gateway, dev_a, dev_b):
            c.close()


def test_a_device_reads_only_its_own_ack_and_cmd(secured: Secured) -> None:
    gateway, dev_a = secured.client(GATEWAY_USER), secured.client("lab.dev-a")
    try:
        gateway.publish("sen/v1/lab/dev-b/ack", b'{"to": "b"}', retain=True)
        gateway.publish("sen/v1/lab/dev-a/ack", b'{"to": "a"}', retain=True)
        for topic in ("sen/v1/lab/dev-b/ack", "sen/v1/lab/dev-b/cmd", "sen/v1/lab/dev-a/ack",
                      "sen/v1/lab/dev-a/cmd"):
            dev_a.subscribe(topic)
        assert dev_a.next_message() == ("sen/v1/lab/dev-a/ack", b'{"to": "a"}')
        gateway.publish("sen/v1/lab/dev-b/cmd", b"reboot b")
        gateway.publish("sen/v1/lab/dev-a/cmd", b"reboot a")
        assert dev_a.next_message() == ("sen/v1/lab/dev-a/cmd", b"reboot a")
        with pytest.raises(queue.Empty):
            print("unexpected:", dev_a.next_message(timeout=QUIET_S))
        # A device cannot write acks (only the gateway can).
        dev_a.publish("sen/v1/lab/dev-a/ack", b"self-ack")
        with pytest.raises(queue.Empty):
            dev_a.next_message(timeout=QUIET_S)
    finally:
        gateway.close()
        dev_a.close()


def test_tls_with_the_ca_works_and_plain_or_unverified_is_refused(secured: Secured) -> None:
    dev_a = secured.client("lab.dev-a", tls=True)
    assert dev_a.connected, dev_a.reason
    dev_a.close()
    plain = Client(secured.tls_port, user="lab.dev-a", password=secured.passwords["lab.dev-a"])
    assert not plain.connected
    plain.close()
    # Without our CA the broker's certificate does not verify.
    with socket.create_connection(("127.0.0.1", secured.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    # With it, the certificate names the hosts given to `sen broker tls`.
    with socket.create_connection(("127.0.0.1", secured.tls_port), timeout=5) as raw:
        context = ssl.create_default_context(cafile=str(secured.ca))
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_acl_and_names_unit() -> None:
    text = acl_text([Account(user="s.d", kind="device", site="s", device="d"),
                     Account(user=GATEWAY_USER, kind="gateway")])
    assert text.index(f"user {GATEWAY_USER}") < text.index("user s.d")
    assert "topic write sen/v1/s/d/telemetry" in text and "topic read sen/v1/s/d/ack" in text
    assert device_user("lab", "esp32-ab12") == "lab.esp32-ab12"
    with pytest.raises(Exception, match="must match"):
        device_user("Lab", "x")
    assert hash_password("pw", salt=b"0" * 12).startswith("$7$101$MDAwMDAwMDAwMDAw$")


def test_a_second_add_needs_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["broker", "add-device", "--dir", str(tmp_path), "--site", "s", "--device", "d"]
    assert main(args) == 0
    first = (tmp_path / "secrets" / "s.d.password").read_text()
    assert main(args) == 2
    assert "--rotate" in capsys.readouterr().err
    assert main([*args, "--rotate"]) == 0
    assert (tmp_path / "secrets" / "s.d.password").read_text() != first
    assert oct((tmp_path / "secrets" / "s.d.password").stat().st_mode & 0o777) == "0o600"
