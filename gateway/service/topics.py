"""MQTT topics of protocol v1: ``sen/v1/{site}/{device}/{kind}``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import TopicError

NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")
KINDS = frozenset({"telemetry", "status", "ack", "cmd"})

TELEMETRY_FILTER = "sen/v1/+/+/telemetry"
STATUS_FILTER = "sen/v1/+/+/status"
ACK_FILTER = "sen/v1/+/+/ack"
SUBSCRIPTIONS = (TELEMETRY_FILTER, STATUS_FILTER, ACK_FILTER)


@dataclass(frozen=True, kw_only=True)
class Topic:
    site: str
    device: str
    kind: str

    def __str__(self) -> str:
        return f"sen/v1/{self.site}/{self.device}/{self.kind}"


def is_name(text: str) -> bool:
    """True for a valid site or device name (``[a-z0-9_-]{1,32}``)."""
    return NAME_RE.fullmatch(text) is not None


_PARSED: dict[str, Topic] = {}  # topic -> parsed: a device sends on the same few topics
_PARSED_MAX = 8192  # about 2 MiB at most


def parse_topic(topic: str) -> Topic:
    found = _PARSED.get(topic)
    if found is None:
        found = _parse(topic)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[topic] = found
    return found


def _parse(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "sen" or parts[1] != "v1" or parts[4] not in KINDS:
        raise TopicError(f"not a sen/v1 topic: {topic!r}")
    site, device = parts[2], parts[3]
    for what, name in (("site", site), ("device", device)):
        if not is_name(name):
            raise TopicError(f"bad {what} name {name!r} in topic", bad_name=True)
    return Topic(site=site, device=device, kind=parts[4])


def ack_topic(site: str, device: str) -> str:
    return f"sen/v1/{site}/{device}/ack"
