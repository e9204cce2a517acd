"""The Compose stack's mosquitto.conf, started on a real Mosquitto (paths and ports made local):
secured listeners refuse anonymous clients, the simulator listener takes only site "lab"."""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_mqtt import Client

from gateway.ops.broker_accounts import GATEWAY_USER, Account, BrokerDir
from gateway.ops.broker_tls import make_tls
from gateway.devstack import find_program, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[int, int], BrokerDir, Path]]:
    base = tmp_path_factory.mktemp("compose-broker")
    store = BrokerDir(base / "broker")
    store.add(Account(user=GATEWAY_USER, kind="gateway"))
    store.add(Account(user="farm.esp32-0001", kind="device", site="farm", device="esp32-0001"))
    make_tls(base / "broker" / "tls", hosts=["127.0.0.1"])
    ports = {p: free_port() for p in (1883, 8883, 1884)}
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("/sen/broker", str(base / "broker")).replace("/mosquitto/data/", f"{base}/")
    conf = conf.replace("/mosquitto/config/sim.acl", str(ROOT / "deploy/mosquitto/sim.acl"))
    for port, local in ports.items():
        conf = conf.replace(f"listener {port}\n", f"listener {local} 127.0.0.1\n")
    (base / "mosquitto.conf").write_text(conf + "user root\n")
    with open(base / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([find_program("mosquitto"), "-c", str(base / "mosquitto.conf")],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = Client(ports[1884])
            probe.close()
            if probe.connected:
                break
            assert proc.poll() is None, (base / "mosquitto.log").read_text()
            time.sleep(0.1)
        yield ports, store, base / "broker" / "tls" / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_compose_broker_config(stack_broker: tuple[dict[int, int], BrokerDir, Path]) -> None:
    ports, store, ca = stack_broker
    password = store.secret_path(GATEWAY_USER).read_text().strip()
    anonymous = Client(ports[1883])
    assert not anonymous.connected
    anonymous.close()
    gateway = Client(ports[8883], user=GATEWAY_USER, password=password, tls=ca)
    sim = Client(ports[1884])
    try:
        assert gateway.connected and sim.connected, (gateway.reason, sim.reason)
        gateway.subscribe("sen/v1/+/+/telemetry")
        sim.publish("sen/v1/farm/esp32-0001/telemetry", b"not the simulator's site")
        sim.publish("sen/v1/lab/sim-0000/telemetry", b"reading")
        assert gateway.next_message() == ("sen/v1/lab/sim-0000/telemetry", b"reading")
        with pytest.raises(queue.Empty):
            gateway.next_message(timeout=0.5)
    finally:
        gateway.close()
        sim.close()


def test_compose_broker_binds_client_ids_and_caps_packets(
        stack_broker: tuple[dict[int, int], BrokerDir, Path]) -> None:
    ports, store, ca = stack_broker
    secret = {u: store.secret_path(u).read_text().strip() for u in (GATEWAY_USER, "farm.esp32-0001")}
    gateway = Client(ports[8883], user=GATEWAY_USER, password=secret[GATEWAY_USER], tls=ca, client_id=GATEWAY_USER)
    intruder = Client(ports[1883], user="farm.esp32-0001", password=secret["farm.esp32-0001"],
                      client_id=GATEWAY_USER)
    try:
        assert gateway.connected and intruder.connected, (gateway.reason, intruder.reason)
        assert not gateway.disconnected.wait(1.0), "a device account took the gateway's client id"
        gateway.subscribe("sen/v1/+/+/telemetry")
        intruder.client.publish("sen/v1/farm/esp32-0001/telemetry", b"x" * 20_000, qos=1)
        assert intruder.disconnected.wait(5.0), "the broker took a 20 KB packet"
        with pytest.raises(queue.Empty):
            gateway.next_message(timeout=0.5)
    finally:
        gateway.close()
        intruder.close()
