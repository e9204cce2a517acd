"""A small synchronous MQTT test client (paho) for the broker security tests."""

from __future__ import annotations

import queue
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT_S = 5.0


class Client:
    """Connects on creation (``connected`` tells whether the broker accepted); collects messages."""

    def __init__(self, port: int, *, user: str | None = None, password: str | None = None,
                 tls: Path | None = None, client_id: str = "", clean_session: bool = True,
                 host: str = "127.0.0.1") -> None:
        """``tls``: a CA file to trust (the connection is TLS then); ``clean_session=False``
        asks for a persistent session (of ``client_id``)."""
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.reason: str | None = None
        self._answered = threading.Event()
        self._subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=clean_session)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls is not None:
            context = ssl.create_default_context(cafile=str(tls))
            self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.error: Exception | None = None
        try:
            self.client.connect(host, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
            self._answered.set()
            return
        self.client.loop_start()
        self._answered.wait(WAIT_S)

    @property
    def connected(self) -> bool:
        return self.reason == "Success"

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.reason = str(reason)
        self._answered.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.reason is None:
            self.reason = f"disconnected: {reason}"
        self.disconnected.set()
        self._answered.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, bytes(message.payload)))

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(WAIT_S), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)

    def next_message(self, timeout: float = WAIT_S) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
