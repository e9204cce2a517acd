"""What the MQTT input changes in paho's per-message work holds for the paho installed."""

from __future__ import annotations

import struct

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.service.mqtt_paho import LeanClient, LeanProperties, Pubacks, lean_properties


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


# -- LeanClient: whole blocks read, the usual PUBLISH straight to on_publish_fast -------------------

class _Sock:
    """A socket whose receives return ``chunks`` one by one (as much as asked for), then would block."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > size:  # paho's own reader asks for a byte or two
            self.chunks.insert(0, chunk[size:])
        return chunk[:size]

    def close(self) -> None:
        self.chunks = []


def _packet(command: int, body: bytes) -> bytes:
    length, header = len(body), bytearray([command])
    while True:
        byte, length = length & 0x7F, length >> 7
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + body


def _publish_packet(topic: bytes, payload: bytes, *, qos: int = 1, mid: int = 7, props: bytes = b"\x00",
                    retain: bool = False) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + props + payload
    return _packet(0x30 | qos << 1 | int(retain), body)


Got = list[tuple[str, bytes, int, int]]  # topic, payload, packet id, QoS


def _lean(*, v5: bool = True) -> tuple[LeanClient, Got, Got]:
    client = LeanClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    client.manual_ack_set(True)
    fast: Got = []
    slow: Got = []
    client.on_publish_fast = lambda *m: fast.append(m)
    client.on_message = lambda c, u, m: slow.append((m._topic.decode(errors="replace"), bytes(m.payload), m.mid, m.qos))
    return client, fast, slow


def _read_all(client: mqtt.Client, chunks: list[bytes]) -> list[int]:
    """Read as paho's loop would, a turn at a time, until ``chunks`` are all read (or an error)."""
    client._sock = sock = _Sock(chunks)  # type: ignore[assignment]
    codes: list[int] = []
    while True:
        rc = client._packet_read()
        codes.append(rc)
        if rc > 0 or rc == mqtt.MQTT_ERR_AGAIN and not sock.chunks:
            return codes


def test_lean_reads_deliver_every_publish_whatever_the_receives_cut() -> None:
    stream = b"".join([_publish_packet(b"sen/v1/a/b/telemetry", b'{"v":1}', mid=1),
                       _publish_packet(b"sen/v1/a/c/status", b"", qos=0),
                       _publish_packet("sen/v1/a/đ/telemetry".encode(), b"x" * 300, mid=0xFFFF),  # 2-byte length
                       _publish_packet(b"sen/v1/a/b/ack", b"{}", mid=2, retain=True)])
    want = [("sen/v1/a/b/telemetry", b'{"v":1}', 1, 1), ("sen/v1/a/c/status", b"", 0, 0),
            ("sen/v1/a/đ/telemetry", b"x" * 300, 0xFFFF, 1), ("sen/v1/a/b/ack", b"{}", 2, 1)]
    for cut in range(1, len(stream)):  # every place one receive can end and the next begin
        client, fast, slow = _lean()
        assert _read_all(client, [stream[:cut], stream[cut:]])[-1] == mqtt.MQTT_ERR_AGAIN
        assert fast == want and not slow and not client._rest, cut
    client, fast, _ = _lean()
    _read_all(client, [stream[i:i + 1] for i in range(len(stream))])  # a byte at a time
    assert fast == want
    again = bytearray(_publish_packet(b"sen/v1/a/b/telemetry", b'{"v":1}', mid=9))
    again[0] |= 0x08  # DUP: the broker sends it again after a reconnect
    client, fast, slow = _lean()
    _read_all(client, [bytes(again)])
    assert fast == [("sen/v1/a/b/telemetry", b'{"v":1}', 9, 1)] and not slow


def test_lean_reads_hand_everything_else_to_paho_as_paho_reads_it() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    odd = [_publish_packet(b"sen/v1/a/b/telemetry", b"p", props=props.pack()),  # properties: paho reads them
           _publish_packet(b"sen/v1/\xff/b/telemetry", b"q", mid=3),  # not UTF-8: paho's way
           _publish_packet(b"t/q2", b"r", qos=2, mid=4)]  # QoS2: paho's PUBREC and PUBREL
    client, fast, slow = _lean()
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    plain.manual_ack_set(True)
    seen: list[tuple[bytes, bytes, int, int]] = []
    plain.on_message = lambda c, u, m: seen.append((m._topic, m.payload, m.mid, m.qos))
    _read_all(client, [b"".join(odd)])
    _read_all(plain, [b"".join(odd)])
    assert not fast and slow == [("sen/v1/a/b/telemetry", b"p", 7, 1), ("sen/v1/\ufffd/b/telemetry", b"q", 3, 1)]
    assert [m[0] for m in seen] == [b"sen/v1/a/b/telemetry", b"sen/v1/\xff/b/telemetry"]
    assert set(client._in_messages) == set(plain._in_messages) == {4}  # the QoS2 one, waiting for PUBREL
    client._ping_t = 1.0  # a PING in flight; PINGRESP clears it
    _read_all(client, [_packet(0xD0, b"")])
    assert client._ping_t == 0
    v311, fast, slow = _lean(v5=False)
    _read_all(v311, [_publish_packet(b"a/b", b"s", props=b"")])
    assert not fast and slow == [("a/b", b"s", 7, 1)]


def test_lean_reads_refuse_a_long_length_and_start_afresh_on_a_new_connection() -> None:
    client, fast, _ = _lean()
    assert _read_all(client, [b"\x30\xff\xff\xff\xff\x01"]) == [mqtt.MQTT_ERR_PROTOCOL]
    client, fast, _ = _lean()
    whole = _publish_packet(b"t/1", b"one")
    _read_all(client, [whole[:5]])
    assert client._rest == whole[:5]
    _read_all(client, [whole])  # another socket: the old half packet is not glued to its bytes
    assert fast == [("t/1", b"one", 7, 1)]
    client._sock = _Sock([b""])  # type: ignore[assignment]
    assert client._packet_read() == mqtt.MQTT_ERR_CONN_LOST


def test_lean_reads_take_one_block_a_turn_of_pahos_loop() -> None:
    client, fast, _ = _lean()
    block = b"".join(_publish_packet(b"t/%d" % i, b"x", mid=i + 1) for i in range(3))
    client._sock = _Sock([block, block])  # type: ignore[assignment]
    assert client._packet_read() == mqtt.MQTT_ERR_AGAIN and len(fast) == 3  # the first block, then back
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS and len(fast) == 6  # paho's loop: the next turn


def test_lean_reads_take_a_message_larger_than_one_receive() -> None:
    client, fast, _ = _lean()
    big = _publish_packet(b"t/big", bytes(range(256)) * 1024)  # 256 KiB: four full receives and a bit
    _read_all(client, [big[i:i + 65536] for i in range(0, len(big), 65536)])
    assert fast == [("t/big", bytes(range(256)) * 1024, 7, 1)]


def test_a_paho_without_the_internals_reads_the_paho_way() -> None:
    client, fast, slow = _lean()
    assert client._lean  # this paho has them all
    client._lean = False  # as on a paho that lacks one of _PAHO_READS
    _read_all(client, [_publish_packet(b"t/1", b"one") + _publish_packet(b"t/2", b"two", qos=0)])
    assert not fast and slow == [("t/1", b"one", 7, 1), ("t/2", b"two", 0, 0)]
