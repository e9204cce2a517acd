"""Serial bridge: what the MQTT session does for USB boards (DESIGN.md, OTA and Serial (SEN1)).

    SerialBridge(serial_input, mqtt_input)  # before both start

- OTA: the session also subscribes to ``sen/v1/+/+/ota`` (QoS1); each message goes, as a
  ``SEN1 {"kind":"ota","b64":"<base64 of the message>"}`` frame, to the serial port on which
  that (site, device) was last heard. A message for a device on no port of this gateway is
  ignored (a board on MQTT takes it from the broker). OTA messages never go to the intake.
- Status: each status frame of a serial board is also published, as it came, to
  ``sen/v1/{site}/{device}/status``, retained, QoS1, so ``sen ota push --wait`` and
  ``sen ota status`` see its ``ver`` and ``ota``. A USB board has no MQTT last will: when its
  port is lost (unplugged, powered off) the bridge publishes its last status with ``state``
  ``offline`` in its place (``sen status`` and the web page show it offline), and its last status
  again at the first frame heard from it after that (a board that comes back without rebooting
  sends no new status). A board whose last status is ``sleeping`` keeps it: in deep sleep an
  ESP32's own USB port goes away, and ``until`` says when it is due.
"""

from __future__ import annotations

import base64
import json
import logging
import threading

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
        serial.on_heard = self.heard
        serial.on_lost = self.lost
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], bytes] = {}  # (site, device) -> its last status frame's JSON
        self._offline: set[tuple[str, str]] = set()  # published offline, not heard since
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
        parts = topic.split("/")
        with self._lock:
            self._last[(parts[2], parts[3])] = payload
            self._offline.discard((parts[2], parts[3]))
        self._publish(topic, payload)

    def heard(self, site: str, device: str) -> None:
        """A frame from (site, device): back after it was published offline, its last status again."""
        if (site, device) not in self._offline:  # the usual case: one set lookup per frame
            return
        with self._lock:
            self._offline.discard((site, device))
            payload = self._last.get((site, device))
        if payload is not None:
            _LOGGER.info("USB board %s/%s is heard again: its status is published again", site, device)
            self._publish(f"sen/v1/{site}/{device}/status", payload)

    def lost(self, devices: list[tuple[str, str]]) -> None:
        """The port of these devices was lost: each one's last status, as ``offline``."""
        for site, device in devices:
            with self._lock:
                payload = self._last.get((site, device))
            if payload is None:
                continue  # never sent a status: nothing of it is retained to correct
            doc = json.loads(payload)  # the frame's JSON object, as parsed once already
            if not isinstance(doc, dict) or doc.get("state") == "sleeping":
                continue  # asleep: its port goes away until it wakes (until says when)
            with self._lock:
                self._offline.add((site, device))
            doc["state"] = "offline"
            doc.pop("until", None)
            _LOGGER.info("USB board %s/%s: its port is lost: published offline", site, device)
            self._publish(f"sen/v1/{site}/{device}/status", json.dumps(doc, separators=(",", ":")).encode())
