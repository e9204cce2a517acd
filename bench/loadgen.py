"""Load for the benchmarks: v1 envelopes from many device ids, published QoS1 over real MQTT.

Every reading has a distinct (device, timestamp), so InfluxDB keeps one point per reading and
a count read back from InfluxDB is a count of readings.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

_MAX_INFLIGHT = 1000


@dataclass(frozen=True, kw_only=True)
class Load:
    devices: int = 1000
    readings: int = 100_000
    per_envelope: int = 10
    site: str = "bench"
    boot: int = 1

    @property
    def envelopes(self) -> int:
        return -(-self.readings // self.per_envelope)


def envelopes(load: Load, *, base_ms: int) -> list[tuple[str, bytes]]:
    """(topic, payload) for every envelope of LOAD, round-robin over the devices."""
    out: list[tuple[str, bytes]] = []
    seqs = [0] * load.devices
    left = load.readings
    i = 0
    while left > 0:
        dev_index = i % load.devices
        device = f"dev-{dev_index:04d}"
        n = min(load.per_envelope, left)
        readings = []
        for _ in range(n):
            seqs[dev_index] += 1
            seq = seqs[dev_index]
            readings.append({"seq": seq, "ts": base_ms + seq, "m": {"temp_c": 20.0 + (seq % 100) / 10,
                                                                      "rh_pct": 50.5}})
        body = {"v": 1, "dev": device, "boot": load.boot, "up": 1000, "board": "bench", "r": readings}
        out.append((f"sen/v1/{load.site}/{device}/telemetry", json.dumps(body, separators=(",", ":")).encode()))
        left -= n
        i += 1
    return out


class Publisher:
    """One paho client publishing QoS1 with many messages in flight; counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self._client.max_inflight_messages_set(_MAX_INFLIGHT)
        self._client.max_queued_messages_set(0)
        self._acked = 0
        self._lock = threading.Lock()
        self._client.on_publish = self._on_publish
        self._client.connect(host, port, keepalive=60)
        self._client.loop_start()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        with self._lock:
            self._acked += 1

    @property
    def acked(self) -> int:
        with self._lock:
            return self._acked

    def publish_all(self, messages: list[tuple[str, bytes]], *, rate_per_s: float | None = None,
                    readings_per_message: int = 1) -> float:
        """Publish MESSAGES (paced to RATE_PER_S readings/s when given); returns the start time."""
        start = time.monotonic()
        for n, (topic, payload) in enumerate(messages):
            if rate_per_s:
                due = start + n * readings_per_message / rate_per_s
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while True:
                info = self._client.publish(topic, payload, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    break
                time.sleep(0.001)  # paho's in-flight window is full: let PUBACKs come back
        return start

    def wait_acked(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.acked < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
