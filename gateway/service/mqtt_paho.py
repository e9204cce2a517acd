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
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

_LOGGER = logging.getLogger(__name__)

_PROBE_MID = 0x1234
_PUBACK = b"\x40\x02"  # PUBACK, remaining length 2 (the packet id; reason "success" left out)


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
