"""Serial bridge: what the MQTT session does for USB boards (DESIGN.md, OTA and Serial (SEN1)).

    SerialBridge(serial_input, mqtt_input)  # before both start

- OTA: the session also subscribes to ``sen/v1/+/+/ota`` (QoS1); each message goes, as a
  ``SEN1 {"kind":"ota","b64":"<base64 of the message>"}`` frame, to the serial port on which
  that (site, device) was last heard. A message for a device on no port of this gateway is
  ignored (a board on MQTT takes it from the broker). OTA messages never go to the intake.
- Status: each status frame of a serial board is also published, as it came, to
  ``sen/v1/{site}/{device}/status``, retained, QoS1, so ``sen ota push --wait`` and
  ``sen ota status`` see its ``ver`` and ``ota``.
"""

from __future__ import annotations

import base64
import logging

from gateway.service.mqtt_input import MqttInput
from gateway.service.serial_frame import MAX_LINE, encode
from gateway.service.serial_input import SerialInput

_LOGGER = logging.getLogger(__name__)

OTA_FILTER = "sen/v1/+/+/ota"


def ota_frame(message: bytes) -> bytes:
    """The SEN1 frame line that carries one ``ota`` message to a board."""
    return encode({"kind": "ota", "b64": base64.b64encode(message).decode()})


class SerialBridge:
    def __init__(self, serial: SerialInput, mqtt: MqttInput) -> None:
        self._serial = serial
        self._publish = mqtt.forward(OTA_FILTER, self.ota)
        serial.on_status = self.status
        self.forwarded = self.ignored = 0

    def ota(self, topic: str, payload: bytes) -> None:
        """An ``ota`` message (paho's thread): to the board's port, or ignored."""
        parts = topic.split("/")
        frame = ota_frame(payload)
        if len(parts) != 5 or len(frame) > MAX_LINE:
            _LOGGER.warning("ota message on %s not forwarded: %s", topic,
                            f"a frame of {len(frame)} bytes (max {MAX_LINE})" if len(parts) == 5 else "bad topic")
            self.ignored += 1
        elif self._serial.send(parts[2], parts[3], frame, "an ota chunk"):
            self.forwarded += 1
        else:
            self.ignored += 1  # a device on no port of ours

    def status(self, topic: str, payload: bytes) -> None:
        """A serial board's status frame: published retained, QoS1."""
        self._publish(topic, payload)
