"""Two costs paho-mqtt puts on every message, paid once instead; each checked against the paho
installed, and paho's own way kept where the check fails.

- :class:`LeanProperties`: paho builds an MQTT v5 ``Properties`` for every PUBLISH it reads, and
  each build remade its tables of property names and types (measured: 25 us of the 45 us paho
  spent on a message). These share one copy of the tables (paho never changes them) and read
  the usual empty property list without clearing them first; any other list is read by paho's
  own code. :func:`lean_properties` makes paho's packet decoder build them.
- :class:`Pubacks`: ``client.ack(mid)`` queues one 4-byte packet and wakes paho's thread once per
  message, and paho writes each with its own send. :meth:`Pubacks.send` queues the PUBACKs of a
  whole batch as one write and wakes the thread once. The packet is learned from paho: at start
  one ``ack`` is taken back from its queue before anything is connected, and its form (a
  PUBACK, the packet id in its last two bytes) checked; anything unexpected and every ack goes
  through ``client.ack``.
- :class:`LeanClient`: paho reads the socket a byte or two at a time (the fixed header, then
  the rest: three receives a packet), goes back to ``select`` after each packet, and builds an
  ``MQTTMessage`` and walks its topic matcher for every PUBLISH. It reads up to 64 KiB at once
  and handles every whole packet in them (one block per turn of paho's loop, so what waits to
  be written goes out between blocks); a QoS0/1 PUBLISH with no properties goes straight to
  ``on_publish_fast(topic, payload, mid, qos)``; every other packet (CONNACK, SUBACK, PUBACK,
  PINGRESP, a PUBLISH with properties or an undecodable topic, QoS2) is handed to paho's own
  handler as if paho had read it. A paho without the internals it relies on reads as usual.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.properties import Properties

_LOGGER = logging.getLogger(__name__)

_PROBE_MID = 0x1234
_PUBACK = b"\x40\x02"  # PUBACK, remaining length 2 (the packet id; reason "success" left out)
_READ_BYTES = 65536  # one receive; whole packets in it are handled before paho's loop looks again
_PAHO_READS = ("_packet_handle", "_sock_recv", "_in_packet", "_msgtime_mutex", "_last_bytes_received",
               "_in_callback_mutex", "_manual_ack", "_protocol", "_easy_log")
FastPublish = Callable[[str, bytes, int, int], None]  # topic, payload, packet id (0 at QoS0), QoS


class LeanProperties(Properties):
    _tables: dict[str, Any] = {}

    def __init__(self, packetType: int) -> None:
        if not LeanProperties._tables:
            LeanProperties._tables = dict(vars(Properties(packetType)))  # type: ignore[no-untyped-call]
        self.__dict__.update(LeanProperties._tables)
        self.__dict__["packetType"] = packetType

    def unpack(self, buffer: bytes) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00":  # no properties (a length of 0): nothing to read or clear
            return self, 1
        return super().unpack(buffer)  # type: ignore[no-any-return,no-untyped-call]


def lean_properties() -> bool:
    """Make paho's packet decoder build :class:`LeanProperties`; False if this paho has no such
    place (a later version): then it keeps its own, slower but the same."""
    found = getattr(paho_packet, "Properties", None)
    if found is Properties:
        paho_packet.Properties = LeanProperties  # type: ignore[attr-defined]
        return True
    return found is LeanProperties


class Pubacks:
    """PUBACKs (QoS1) of many messages, as one write. Make it before the client connects."""

    def __init__(self, client: mqtt.Client) -> None:
        self._client = client
        self._template = self._learn(client)
        if self._template is None:
            _LOGGER.info("paho-mqtt queues acks unlike its 2.2: acking one message at a time")

    @property
    def batched(self) -> bool:
        return self._template is not None

    @staticmethod
    def _learn(client: mqtt.Client) -> dict[str, Any] | None:
        queue = getattr(client, "_out_packet", None)
        if not isinstance(queue, deque) or queue or getattr(client, "_sockpairW", 0) is not None:
            return None  # not paho 2.x's queue, or not a fresh client
        client.ack(_PROBE_MID, 1)  # not connected: paho only queues it
        if len(queue) != 1:
            queue.clear()
            return None
        entry = queue.pop()
        expected = _PUBACK + _PROBE_MID.to_bytes(2, "big")
        if not isinstance(entry, dict) or entry.get("packet") != expected or entry.get("pos") != 0 \
                or entry.get("to_process") != len(expected):
            return None
        return entry

    def send(self, mids: Sequence[int]) -> None:
        """Queue a PUBACK for each of ``mids`` and wake paho's thread to write them."""
        if not mids:
            return
        if self._template is None:
            for mid in mids:
                self._client.ack(mid, 1)
            return
        packet = b"".join([_PUBACK + mid.to_bytes(2, "big") for mid in mids])
        queue: deque[Any] = self._client._out_packet
        queue.append(dict(self._template, mid=mids[-1], packet=packet, to_process=len(packet)))
        wake = self._client._sockpairW
        if wake is not None:
            try:
                wake.send(b"0")
            except OSError:  # full of wake-ups already, or closed: paho's thread looks anyway
                pass


def _in_packet(command: int = 0, body: bytes | bytearray = b"") -> Any:  # paho's _InPacket (typing only)
    """paho's reader state (``Client._in_packet``): a whole packet read (``command``, ``body``), or none begun."""
    return {"command": command, "have_remaining": int(command != 0), "remaining_count": [], "remaining_mult": 1,
            "remaining_length": len(body), "packet": bytearray(body), "to_process": 0, "pos": 0}


def _frame(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """Where the packet at ``pos`` has its variable header and where it ends; None while it is
    not all in ``buf``; (-1, -1) for a remaining length longer than MQTT's four bytes."""
    head, length, shift, end = pos + 1, 0, 0, len(buf)
    while True:
        if head >= end:
            return None
        byte = buf[head]
        head += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift == 28:
            return -1, -1
    return (head, head + length) if head + length <= end else None


class LeanClient(mqtt.Client):
    """paho's client reading whole blocks, with a direct path for the usual PUBLISH (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publish_fast: FastPublish | None = None
        self._lean = all(hasattr(self, name) for name in _PAHO_READS) and hasattr(mqtt, "time_func")
        self._rest = bytearray()  # the start of a packet the next receive completes
        self._rest_sock: object = None  # the socket it came from (a new connection starts afresh)
        if not self._lean:
            _LOGGER.info("paho-mqtt reads packets unlike its 2.2: reading them paho's way")

    def _packet_read(self) -> MQTTErrorCode:
        if not self._lean:
            return super()._packet_read()
        try:
            data = self._sock_recv(_READ_BYTES)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:  # TimeoutError too
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        sock = self._sock
        buf: bytes | bytearray = data
        if self._rest and self._rest_sock is sock:
            self._rest += data
            buf = self._rest
        self._rest, self._rest_sock = bytearray(), sock
        pos = 0
        while pos < len(buf):
            found = _frame(buf, pos)
            if found is None:
                break
            start, end = found
            if start < 0:
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            command = buf[pos]
            rc = None
            if command & 0xF0 == 0x30:
                rc = self._fast_publish(command, buf, start, end)
            if rc is None:
                rc = self._paho_handle(command, buf[start:end])
            pos = end
            if rc:
                return rc
            if self._sock is not sock:  # a callback disconnected: the rest is the old connection's
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        if pos < len(buf):
            self._rest = buf if pos == 0 and isinstance(buf, bytearray) else bytearray(buf[pos:])
        # One block a turn: AGAIN sends paho's loop back to select, which writes the PUBACKs and pings
        # that wait before the next block (paho's loop_read would otherwise go on reading a flood).
        return MQTTErrorCode.MQTT_ERR_AGAIN

    def _fast_publish(self, command: int, buf: bytes | bytearray, start: int, end: int) -> MQTTErrorCode | None:
        """A QoS0/1 PUBLISH with no properties to ``on_publish_fast``; None: paho's way instead."""
        qos, callback = (command >> 1) & 3, self.on_publish_fast
        if callback is None or qos == 2 or not self._manual_ack or self._protocol != mqtt.MQTTv5:
            return None
        if end - start < 2:
            return None
        topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
        props = topic_end + 2 if qos else topic_end
        if props >= end:  # short, or no property length: paho says what is wrong
            return None
        mid = buf[topic_end] << 8 | buf[topic_end + 1] if qos else 0
        if buf[props] != 0 or qos and not mid:  # properties to read, or packet id 0
            return None
        try:
            topic = str(buf[start + 2:topic_end], "utf-8")
        except UnicodeDecodeError:
            return None
        if not topic:
            return None
        with self._in_callback_mutex:
            try:
                callback(topic, bytes(buf[props + 1:end]), mid, qos)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _paho_handle(self, command: int, body: bytes | bytearray) -> MQTTErrorCode:
        """One whole packet through paho's own handler, as paho's reader hands it over."""
        self._in_packet = _in_packet(command, body)
        try:
            rc: MQTTErrorCode = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _in_packet()
        return rc
