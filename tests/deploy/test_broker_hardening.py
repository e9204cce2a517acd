"""The Mosquitto configuration `sen broker conf` writes, run on a real Mosquitto 2.0 (included
from conf.d as on Debian): client ids bound to accounts (no session takeover, no kicking),
the plain listener on localhost only once TLS is on, and a packet size cap."""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from deploy_broker import GeneratedBroker, make_broker_dir, ports
from deploy_mqtt import Client
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.cli import main
from gateway.ops.broker_accounts import GATEWAY_USER, Account, BrokerDir
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
QUIET_S = 1.0  # how long "never arrives" / "is not disconnected" is watched
WAIT_S = 5.0
TELEMETRY = "sen/v1/+/+/telemetry"


@dataclass
class Generated:
    broker: GeneratedBroker
    plain_port: int
    tls_port: int
    ca: Path
    passwords: dict[str, str]

    def client(self, user: str, **kwargs: Any) -> Client:
        return Client(self.plain_port, user=user, password=self.passwords[user], **kwargs)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    base = tmp_path_factory.mktemp("generated")
    # dev-a at two sites: the firmware's client id is its device name, the same at both.
    store, passwords = make_broker_dir(base, devices=[("lab", "dev-a"), ("lab", "dev-b"), ("farm", "dev-a")],
                                       tls=True)
    plain, tls = ports()
    assert main(["broker", "conf", "--dir", str(store.path), "--tls-dir", str(store.path / "tls"),
                 "--port", str(plain), "--tls-port", str(tls)]) == 0
    broker = GeneratedBroker(base / "mosquitto", store.path / "sen.conf", port=plain)
    broker.start()
    yield Generated(broker, plain, tls, store.path / "tls" / "ca.crt", passwords)
    broker.stop()


class GatewaySession:
    """The gateway's way to connect: MQTT v5, its client id, clean_start False, a session expiry."""

    def __init__(self, generated: Generated, *, client_id: str = GATEWAY_USER) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(GATEWAY_USER, generated.passwords[GATEWAY_USER])
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", generated.plain_port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.connected.wait(WAIT_S), "the gateway could not connect"

    def _on_connect(self, _c: Any, _u: Any, flags: mqtt.ConnectFlags, reason: Any, _p: Any) -> None:
        self.session_present = flags.session_present
        if not reason.is_failure:
            self.connected.set()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(WAIT_S)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def drain(self, timeout: float = QUIET_S) -> list[tuple[str, bytes]]:
        got = []
        while True:
            try:
                got.append(self.messages.get(timeout=timeout))
            except queue.Empty:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _drain(client: Client, timeout: float = QUIET_S) -> list[tuple[str, bytes]]:
    got = []
    while True:
        try:
            got.append(client.next_message(timeout=timeout))
        except queue.Empty:
            return got


def test_a_device_cannot_take_over_the_gateways_session(generated: Generated) -> None:
    gateway = GatewaySession(generated)
    gateway.subscribe(TELEMETRY)
    gateway.close()  # away: the broker queues telemetry in the gateway's session
    dev_b = generated.client("lab.dev-b")
    for n in range(3):
        dev_b.publish("sen/v1/lab/dev-b/telemetry", f"reading {n}".encode())
    dev_b.close()
    # The attack: a device account resumes the session of the gateway's client id...
    thief = generated.client("lab.dev-a", client_id=GATEWAY_USER, clean_session=False)
    assert thief.connected, thief.reason
    stolen = _drain(thief)
    thief.close()
    # ...or connects with it and a clean session, which would wipe the session.
    wiper = generated.client("lab.dev-a", client_id=GATEWAY_USER)
    wiper.close()
    assert stolen == []
    gateway = GatewaySession(generated)
    try:
        assert gateway.session_present, "the gateway's session was taken over or wiped"
        got = gateway.drain()
        assert got == [("sen/v1/lab/dev-b/telemetry", f"reading {n}".encode()) for n in range(3)]
    finally:
        gateway.close()


def test_a_device_cannot_kick_the_gateway_off(generated: Generated) -> None:
    gateway = GatewaySession(generated)
    gateway.subscribe(TELEMETRY)
    intruders = [generated.client("lab.dev-a", client_id=GATEWAY_USER) for _ in range(3)]
    try:
        assert all(i.connected for i in intruders), [i.reason for i in intruders]
        assert not gateway.disconnected.wait(QUIET_S), "a device account kicked the gateway off"
        dev_b = generated.client("lab.dev-b")
        dev_b.publish("sen/v1/lab/dev-b/telemetry", b"still the gateway's")
        dev_b.close()
        assert gateway.messages.get(timeout=WAIT_S) == ("sen/v1/lab/dev-b/telemetry", b"still the gateway's")
        assert not gateway.disconnected.is_set()
    finally:
        for intruder in intruders:
            intruder.close()
        gateway.close()


def test_the_same_device_name_at_two_sites_does_not_collide(generated: Generated) -> None:
    # Both boards connect with the client id their firmware uses: the device name.
    lab = generated.client("lab.dev-a", client_id="dev-a")
    farm = generated.client("farm.dev-a", client_id="dev-a")
    gateway = GatewaySession(generated)
    try:
        assert lab.connected and farm.connected, (lab.reason, farm.reason)
        lab.subscribe("sen/v1/lab/dev-a/ack")
        farm.subscribe("sen/v1/farm/dev-a/ack")
        assert not lab.disconnected.wait(QUIET_S) and not farm.disconnected.is_set()
        gateway.publish("sen/v1/lab/dev-a/ack", b"lab")
        gateway.publish("sen/v1/farm/dev-a/ack", b"farm")
        assert lab.next_message() == ("sen/v1/lab/dev-a/ack", b"lab")
        assert farm.next_message() == ("sen/v1/farm/dev-a/ack", b"farm")
    finally:
        for c in (lab, farm):
            c.close()
        gateway.close()


def test_an_oversize_publish_from_a_device_is_refused(generated: Generated) -> None:
    gateway = GatewaySession(generated, client_id="sen-gateway")
    gateway.subscribe(TELEMETRY)
    dev_a = generated.client("lab.dev-a")  # MQTT 3.1.1, as the firmware: the client sets no limit itself
    try:
        dev_a.client.publish("sen/v1/lab/dev-a/telemetry", b"x" * 20_000, qos=1)
        assert dev_a.disconnected.wait(WAIT_S), "the broker took a 20 KB packet"
        assert gateway.drain() == []
        # What the contract allows still passes: a 4 KiB telemetry message up, an 8 KiB OTA chunk down.
        dev_a.close()
        dev_a = generated.client("lab.dev-a")
        dev_a.subscribe("sen/v1/lab/dev-a/ota")
        dev_a.publish("sen/v1/lab/dev-a/telemetry", b"t" * 4096)
        assert gateway.messages.get(timeout=WAIT_S) == ("sen/v1/lab/dev-a/telemetry", b"t" * 4096)
        gateway.publish("sen/v1/lab/dev-a/ota", b"o" * 8192)
        assert dev_a.next_message() == ("sen/v1/lab/dev-a/ota", b"o" * 8192)
    finally:
        dev_a.close()
        gateway.close()


def test_with_tls_the_plain_listener_is_on_localhost_only(generated: Generated) -> None:
    # 127.0.0.2 is this machine too, but not the address the plain listener is bound to.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", generated.plain_port), timeout=2).close()
    local = generated.client("lab.dev-a")
    assert local.connected, local.reason
    local.close()
    # The TLS listener takes every interface, and its certificate verifies against the CA.
    context = ssl.create_default_context(cafile=str(generated.ca))
    with socket.create_connection(("127.0.0.2", generated.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_add_device_prints_the_broker_the_conf_describes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker_dir = tmp_path / "broker"

    def snippet(device: str) -> dict[str, Any]:
        capsys.readouterr()
        assert main(["broker", "add-device", "--dir", str(broker_dir), "--site", "farm", "--device", device]) == 0
        out = capsys.readouterr().out
        return dict(json.loads(out[out.index("{"):out.rindex("}") + 1])["broker"])

    assert main(["broker", "conf", "--dir", str(broker_dir), "--port", "1884"]) == 0
    plain = snippet("d1")
    assert (plain["tls"], plain["port"], plain["user"]) == (False, 1884, "farm.d1") and "ca" not in plain
    assert main(["broker", "tls", "--out", str(broker_dir / "tls"), "--host", "pi.local"]) == 0
    assert main(["broker", "conf", "--dir", str(broker_dir), "--tls-dir", str(broker_dir / "tls"),
                 "--tls-port", "8884"]) == 0
    tls = snippet("d2")
    assert (tls["tls"], tls["port"], tls["ca"]) == (True, 8884, "ca.der")
    capsys.readouterr()
    assert main(["broker", "add-gateway", "--dir", str(broker_dir), "--user", "gw-b"]) == 0
    out = capsys.readouterr().out
    assert 'username = "gw-b"' in out and 'client_id = "gw-b"' in out


def _connected(port: int, user: str, password: str, ca: Path) -> bool:
    client = Client(port, user=user, password=password, tls=ca)
    client.close()
    return client.connected


def _mosquitto_ids() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@pytest.mark.skipif(os.geteuid() != 0 or _mosquitto_ids() is None,
                    reason="needs root and Debian's mosquitto user, to let Mosquitto drop to it")
def test_the_broker_needs_only_its_password_file_and_server_key() -> None:
    """deploy/README.md's permissions: root owns everything; the broker's user gets the group of
    the password file and the server key (0640); the CA key and the secrets stay root's."""
    ids = _mosquitto_ids()
    assert ids is not None
    uid, gid = ids
    base = Path(tempfile.mkdtemp(prefix="sen-broker-perms-", dir="/tmp"))  # not under root's 0700 tmp
    broker = None
    try:
        base.chmod(0o755)
        store, passwords = make_broker_dir(base, devices=[("lab", "dev-a")], tls=True)
        tls_dir = store.path / "tls"
        for path in (store.path / "passwd", tls_dir / "server.key"):  # what the README says to run
            os.chown(path, 0, gid)
            path.chmod(0o640)
        _, tls = ports()
        assert main(["broker", "conf", "--dir", str(store.path), "--tls-dir", str(tls_dir), "--tls-port", str(tls),
                     "--bind", "127.0.0.1", "--no-plain"]) == 0
        data = base / "mosquitto"
        data.mkdir()
        os.chown(data, uid, gid)  # Debian's /var/lib/mosquitto
        broker = GeneratedBroker(data, store.path / "sen.conf", port=tls, user="mosquitto")
        broker.start()
        assert broker.pid is not None
        status = Path(f"/proc/{broker.pid}/status").read_text()
        assert re.search(rf"(?m)^Uid:\s+{uid}\s", status), "Mosquitto did not drop to its user"
        board = Client(tls, user="lab.dev-a", password=passwords["lab.dev-a"], tls=tls_dir / "ca.crt")
        assert board.connected, (board.reason, broker.log_tail())
        board.close()
        # Accounts added later (by mosquitto_passwd, and by the Python writer that stands in for
        # it) keep the password file the broker's to read, after a reload too.
        added = {"lab.dev-b": BrokerDir(store.path).add(Account(user="lab.dev-b", kind="device", site="lab",
                                                                device="dev-b")),
                 "lab.dev-c": BrokerDir(store.path, passwd_tool=None).add(Account(user="lab.dev-c", kind="device",
                                                                                  site="lab", device="dev-c"))}
        assert (store.path / "passwd").stat().st_gid == gid
        os.kill(broker.pid, signal.SIGHUP)  # systemctl reload mosquitto
        for user, password in added.items():
            wait_for(lambda u=user, p=password: _connected(tls, u, p, tls_dir / "ca.crt"), timeout=10,
                             what=f"{user} accepted after the reload")
        # Nothing else secret is the broker's to read.
        for path, mode in ((tls_dir / "ca.key", 0o600), (store.path / "secrets", 0o700)):
            info = path.stat()
            assert (info.st_uid, info.st_mode & 0o777) == (0, mode), path
        for secret in (store.path / "secrets").iterdir():
            assert (secret.stat().st_uid, secret.stat().st_mode & 0o777) == (0, 0o600), secret
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(base)
