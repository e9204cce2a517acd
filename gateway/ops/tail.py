"""`sen tail`: print readings live as boards publish them (its own clean MQTT session, QoS0)."""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.service.decode import Reject, decode_telemetry
from gateway.service.options import parse_mqtt_url
from gateway.errors import TopicError
from gateway.service.topics import TELEMETRY_FILTER, parse_topic


def format_message(topic: str, payload: bytes) -> list[str]:
    try:
        parsed = parse_topic(topic)
    except TopicError as err:
        return [f"{topic}: refused: {err}"]
    decoded = decode_telemetry(parsed, payload)
    if isinstance(decoded, Reject):
        return [f"{parsed.site}/{parsed.device}: refused ({decoded.reason}): {decoded.detail}"]
    out = []
    for r in decoded.readings:
        when = (time.strftime("%H:%M:%S", time.localtime(r.ts_ms / 1000)) if r.ts_ms is not None
                else f"up {r.up_ms} ms")
        metrics = " ".join(f"{k}={v:g}" for k, v in sorted(r.metrics.items()))
        sensor = f" {r.sensor}" if r.sensor else ""
        out.append(f"{decoded.site}/{decoded.device}{sensor} boot {decoded.boot} seq {r.seq} {when} {metrics}")
    return out


def run(mqtt_url: str, *, out: TextIO, stop: threading.Event, duration_s: float | None = None) -> int:
    endpoint = parse_mqtt_url(mqtt_url, option="--mqtt")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, clean_session=True)

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(TELEMETRY_FILTER, qos=0)

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        for line in format_message(message.topic, bytes(message.payload)):
            print(line, file=out, flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(endpoint.host, endpoint.port)
    client.loop_start()
    try:
        stop.wait(duration_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
