"""The gateway over TLS (mqtts://) against a real Mosquitto running the configuration that
`sen broker conf --tls-dir ... --no-plain` wrote, with the CA and certificate of `sen broker tls`:
it verifies the broker against its CA file, and a wrong CA is refused with a clear log line."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import OptionsError
from gateway.cli import main
from gateway.devstack import InfluxDB
from gateway.ops.broker_accounts import GATEWAY_USER
from gateway.service import main as service
from gateway.service.options import GatewayOptions, parse_mqtt_url
from tests.deploy.deploy_broker import GeneratedBroker, make_broker_dir, ports
from tests.deploy.deploy_mqtt import Client
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration
DEVICE = "lab.dev-a"


@dataclass
class TlsBroker:
    broker: GeneratedBroker
    port: int
    ca: Path
    passwords: dict[str, str]
    base: Path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    base = tmp_path_factory.mktemp("tls-broker")
    store, passwords = make_broker_dir(base, devices=[("lab", "dev-a")], tls=True)
    _, tls = ports()
    assert main(["broker", "conf", "--dir", str(store.path), "--tls-dir", str(store.path / "tls"),
                 "--tls-port", str(tls), "--bind", "127.0.0.1", "--no-plain"]) == 0
    broker = GeneratedBroker(base / "mosquitto", store.path / "sen.conf", port=tls)
    broker.start()
    yield TlsBroker(broker, tls, store.path / "tls" / "ca.crt", passwords, base)
    broker.stop()


def _options(tls_broker: TlsBroker, influxdb: InfluxDB, db: str, spool: Path, *, ca: Path) -> GatewayOptions:
    return GatewayOptions(mqtt_url=f"mqtts://localhost:{tls_broker.port}", mqtt_ca_file=str(ca),
                          mqtt_username=GATEWAY_USER, mqtt_password=tls_broker.passwords[GATEWAY_USER],
                          client_id=GATEWAY_USER, influx_url=influxdb.url, database=db, spool_dir=spool,
                          flush_interval_s=0.2, reconnect_max_s=2, ack_interval_s=0)


class Running:
    """``service.run`` on a thread until :meth:`stop`."""

    def __init__(self, options: GatewayOptions) -> None:
        self.stop_event = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(service.run(options, stop=self.stop_event)),
                                       name="gateway-under-test")
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive() and self.result == [0]


def _logged(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.INFO) -> bool:
    return any(text in r.getMessage() and r.levelno >= level for r in caplog.records)


def test_the_gateway_reads_a_board_over_tls(tls_broker: TlsBroker, influxdb: InfluxDB, influx_db: str,
                                            tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gateway = Running(_options(tls_broker, influxdb, influx_db, tmp_path / "spool", ca=tls_broker.ca))
    board = Client(tls_broker.port, user=DEVICE, password=tls_broker.passwords[DEVICE], tls=tls_broker.ca,
                   client_id="dev-a")
    try:
        wait_for(lambda: _logged(caplog, "subscribed to sen/v1/+/+/telemetry"), timeout=30,
                 what="the gateway's subscription over TLS")
        assert _logged(caplog, f"connected to MQTT broker mqtts://localhost:{tls_broker.port}")
        assert board.connected, board.reason
        board.subscribe("sen/v1/lab/dev-a/ack")
        doc = {"v": 1, "dev": "dev-a", "boot": 3, "up": 1000,
               "r": [{"seq": 1, "ts": 1_763_800_000_000, "m": {"temp_c": 21.5}}]}
        board.publish("sen/v1/lab/dev-a/telemetry", json.dumps(doc).encode())
        topic, ack = board.next_message(timeout=30)  # the end-to-end ack, back over TLS
        assert topic == "sen/v1/lab/dev-a/ack" and json.loads(ack)["seq"] == 1
        wait_for(lambda: influxdb.rows('SELECT temp_c FROM "telemetry"', influx_db), timeout=60,
                 what="the reading in InfluxDB")
    finally:
        board.close()
        gateway.stop()


# paho-mqtt 2.2's Client._ssl_wrap_socket does not close the TLS socket whose handshake failed;
# the garbage collector does (a ResourceWarning, which this suite otherwise turns into an error).
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_wrong_ca_is_refused_with_a_clear_error(tls_broker: TlsBroker, influxdb: InfluxDB, influx_db: str,
                                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # Another CA, with a certificate for the same names: the broker's does not chain to it.
    assert main(["broker", "tls", "--out", str(tmp_path / "other"), "--host", "localhost"]) == 0
    wrong = tmp_path / "other" / "ca.crt"
    gateway = Running(_options(tls_broker, influxdb, influx_db, tmp_path / "spool", ca=wrong))
    try:
        wait_for(lambda: _logged(caplog, "cannot reach MQTT broker", logging.ERROR), timeout=30,
                 what="the gateway's error")
        line = next(r.getMessage() for r in caplog.records if "cannot reach MQTT broker" in r.getMessage())
        assert "certificate verify failed" in line and str(wrong) in line, line
        assert not _logged(caplog, "connected to MQTT broker")
    finally:
        gateway.stop()


def test_tls_options(tmp_path: Path) -> None:
    assert (parse_mqtt_url("mqtts://broker", tls=True).port, parse_mqtt_url("mqtts://b:1", tls=True).scheme) == \
        (8883, "mqtts")
    with pytest.raises(OptionsError, match="mqtts"):  # sen tail and sen sim speak no TLS: they refuse it
        parse_mqtt_url("mqtts://broker")
    base = {"influx_url": "http://127.0.0.1:8086", "database": "sen", "spool_dir": tmp_path}
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate\n")
    for url, ca_file, message in [("mqtt://b:1883", str(ca), "mqtts://"),
                                  ("mqtts://b", str(tmp_path / "missing.crt"), "cannot read"),
                                  ("mqtts://b", str(ca), "not a PEM")]:
        with pytest.raises(OptionsError, match=message) as info:
            GatewayOptions(mqtt_url=url, mqtt_ca_file=ca_file, **base)  # type: ignore[arg-type]
        assert str(info.value).startswith("mqtt_ca_file:")
    # Without a CA file, mqtts:// verifies against the system's CAs.
    assert GatewayOptions(mqtt_url="mqtts://b", **base).mqtt_tls  # type: ignore[arg-type]
    # The broker binds client ids to user names: the gateway's client id is its account's.
    with pytest.raises(OptionsError, match="client_id: 'sen-gateway' must equal mqtt_username 'gw-b'"):
        GatewayOptions(mqtt_url="mqtt://b", mqtt_username="gw-b", **base)  # type: ignore[arg-type]
