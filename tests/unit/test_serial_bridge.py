"""The serial bridge's status of USB boards (gateway/service/serial_bridge.py): offline when the
port is lost, as it was when heard again, and a sleeping board left sleeping. The whole path
through a real gateway and broker: tests/integration/test_serial_input.py."""

from __future__ import annotations

import json
from typing import Any, cast

from gateway.service.mqtt_input import MqttInput
from gateway.service.serial_bridge import SerialBridge
from gateway.service.serial_input import SerialInput


class _Serial:
    on_status = on_heard = on_lost = None


class _Mqtt:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def forward(self, topic_filter: str, to: object) -> object:
        return lambda topic, payload: self.published.append((topic, json.loads(payload)))


def _bridge() -> tuple[SerialBridge, _Mqtt]:
    mqtt = _Mqtt()
    return SerialBridge(cast(SerialInput, _Serial()), cast(MqttInput, mqtt)), mqtt


def _status(state: str, **more: object) -> bytes:
    return json.dumps({"kind": "status", "site": "lab", "dev": "b", "state": state, "ver": "1.4.0", **more}).encode()


def test_a_lost_port_makes_the_board_offline_until_it_is_heard_again() -> None:
    bridge, mqtt = _bridge()
    bridge.heard("lab", "b")  # heard, no status yet: nothing to publish
    bridge.lost([("lab", "b")])  # never sent a status: nothing retained to correct
    assert mqtt.published == []
    bridge.status("sen/v1/lab/b/status", _status("online"))
    bridge.lost([("lab", "b")])
    bridge.heard("lab", "b")
    bridge.heard("lab", "b")  # once is enough
    states = [(doc["state"], doc["ver"]) for _, doc in mqtt.published]
    assert states == [("online", "1.4.0"), ("offline", "1.4.0"), ("online", "1.4.0")]
    assert {topic for topic, _ in mqtt.published} == {"sen/v1/lab/b/status"}


def test_a_sleeping_board_stays_sleeping_when_its_port_goes_away() -> None:
    bridge, mqtt = _bridge()
    bridge.status("sen/v1/lab/b/status", _status("sleeping", until=1_800_000_000_000))
    bridge.lost([("lab", "b")])
    bridge.heard("lab", "b")
    assert [doc["state"] for _, doc in mqtt.published] == ["sleeping"]
