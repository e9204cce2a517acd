"""MQTT input (paho-mqtt 2.x): persistent QoS1 session, manual acks after the spool commit.

The client connects with ``clean_session=False`` and a fixed client id, so the broker keeps
unacknowledged messages while the gateway is away and delivers them again on reconnect.
``manual_ack_set(True)``: a PUBACK goes out only after :meth:`Handler.handle` returned,
i.e. after the readings are committed to the spool (or the message is set aside).
paho's network thread reconnects with a capped exponential backoff.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.handler import Handler
from gateway.options import GatewayOptions
from gateway.topics import SUBSCRIPTIONS

_LOGGER = logging.getLogger(__name__)

_QOS = 1
_CONNECT_FAIL_LOG_EVERY_S = 60.0


class MqttInput:
    def __init__(self, options: GatewayOptions, handler: Handler) -> None:
        self._endpoint = options.mqtt
        self._url = options.mqtt_url
        self._keepalive_s = options.mqtt_keepalive_s
        self._client_id = options.client_id
        self._handler = handler
        self._connected = False
        self._fail_logged: float | None = None
        self._failures = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=options.reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Connect in the background; paho's thread retries until the broker answers."""
        _LOGGER.info("connecting to MQTT broker %s as %r", self._url, self._client_id)
        self._client.connect_async(self._endpoint.host, self._endpoint.port,
                                   keepalive=self._keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect; unacknowledged messages stay with the broker for the next start."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False

    # -- paho callbacks (all on paho's network thread) ----------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Any) -> None:
        if reason_code.is_failure:
            _LOGGER.error("MQTT broker %s refused the connection: %s", self._url, reason_code)
            return
        self._connected = True
        self._fail_logged = None
        _LOGGER.info("connected to MQTT broker %s (session present: %s)", self._url,
                     flags.session_present)
        client.subscribe([(topic, _QOS) for topic in SUBSCRIPTIONS])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._fail_logged is None or now - self._fail_logged >= _CONNECT_FAIL_LOG_EVERY_S:
            self._fail_logged = now
            _LOGGER.error("cannot reach MQTT broker %s (%s); retrying with backoff (attempt %s)",
                          self._url, self._probe(), self._failures)

    def _probe(self) -> str:
        """Why the broker cannot be reached (paho does not tell): one TCP connect, 2 s at most."""
        try:
            with socket.create_connection((self._endpoint.host, self._endpoint.port), timeout=2.0):
                return "TCP connects, MQTT handshake failed"
        except OSError as err:
            return str(err) or type(err).__name__

    def _on_disconnect(self, client: mqtt.Client, userdata: Any,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Any) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected and reason_code.is_failure:
            _LOGGER.warning("lost MQTT broker %s (%s); reconnecting", self._url, reason_code)
        elif was_connected:
            _LOGGER.info("disconnected from MQTT broker %s", self._url)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Any) -> None:
        for topic, code in zip(SUBSCRIPTIONS, reason_codes):
            if code.is_failure:
                _LOGGER.error("subscription to %s refused: %s", topic, code)
            else:
                _LOGGER.info("subscribed to %s (QoS %s)", topic, code.value)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received_ms = time.time_ns() // 1_000_000
        try:
            self._handler.handle(message.topic, bytes(message.payload), received_ms=received_ms)
        except Exception:  # noqa: BLE001 — a store failure must not kill paho's thread
            _LOGGER.exception("could not store message on %s; not acknowledged, the broker "
                              "delivers it again after the next reconnect", message.topic)
            return
        client.ack(message.mid, message.qos)
