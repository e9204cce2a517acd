"""What the MQTT input changes in paho's per-message work holds for the paho installed."""

from __future__ import annotations

import struct

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.service.mqtt_paho import LeanProperties, Pubacks, lean_properties


def _publish(props: bytes, payload: bytes = b'{"v":1}') -> bytearray:
    topic = b"sen/v1/a/b/telemetry"
    return bytearray(struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + props + payload)


def test_publish_properties_are_lean_and_read_alike() -> None:
    assert lean_properties() and lean_properties()  # installed once, found installed after
    empty = paho_packet.decode_publish(0x32, _publish(b"\x00"), mqtt.MQTTv5)
    assert isinstance(empty.properties, LeanProperties) and empty.properties.isEmpty()
    assert empty.payload == b'{"v":1}' and empty.mid == 7
    full = Properties(PacketTypes.PUBLISH)
    full.MessageExpiryInterval = 60
    full.UserProperty = ("k", "v")
    got = paho_packet.decode_publish(0x32, _publish(full.pack()), mqtt.MQTTv5)
    assert got.payload == b'{"v":1}' and str(got.properties) == str(full)
    assert got.properties.MessageExpiryInterval == 60
    assert Properties(PacketTypes.PUBLISH).isEmpty() and not hasattr(empty.properties, "UserProperty")


def _client() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    return client


def test_a_batch_of_pubacks_is_one_packet_in_pahos_queue() -> None:
    client = _client()
    pubacks = Pubacks(client)
    assert pubacks.batched and not client._out_packet  # the probe was taken back
    pubacks.send([1, 2, 0x1234])
    assert len(client._out_packet) == 1
    entry = client._out_packet[0]
    assert entry["packet"] == b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x12\x34"
    assert entry["to_process"] == 12 and entry["pos"] == 0 and entry["info"] is None
    client.ack(9, 1)  # paho's own, for comparison: the same form
    assert client._out_packet[1]["packet"] == b"\x40\x02\x00\x09"
    assert set(client._out_packet[1]) == set(entry)


def test_without_manual_acks_or_a_fresh_client_each_ack_is_pahos() -> None:
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    assert not Pubacks(plain).batched  # paho queues nothing: nothing to learn from
    busy = _client()
    busy.ack(5, 1)
    fallback = Pubacks(busy)
    assert not fallback.batched and len(busy._out_packet) == 1
    fallback.send([6, 7])
    assert [e["packet"] for e in busy._out_packet] == [b"\x40\x02\x00\x05", b"\x40\x02\x00\x06", b"\x40\x02\x00\x07"]
