"""MQTT input (paho-mqtt 2.x, MQTT v5): persistent QoS1 session, manual acks after the commit.

- Persistent session: fixed client id, ``clean_start=False`` and a session expiry, so the broker keeps unacknowledged
  messages while the gateway is away. The subscriptions are (re)made on every connect; a lost session (CONNACK
  session present False after we had one) is logged.
- Manual acks: messages go to the :class:`~gateway.service.intake.Intake` (group commit); the PUBACKs of a batch go
  out only after it is committed to the spool, in one write. Messages of a dropped connection are not acked on the
  new one (packet ids are per connection): the broker delivers them again and the spool skips them as duplicates.
- Receive maximum: the broker sends at most ``receive_max`` unacked messages, which bounds memory and makes "not
  acking" a real backpressure when the spool is full.
- Shared subscription (``shared_group``): telemetry comes from ``$share/GROUP/...`` so several gateways split it;
  status and retained acks are read by every gateway.
- End-to-end acks are published retained, QoS1, the highest per device once per batch; said again (every 5 s at
  most) to a device that keeps sending what it already has an ack for.
- Watchdog: no message for ``watchdog_s`` while connected is logged and counted.
- TLS (``mqtts://``): the broker's certificate is verified against ``mqtt_ca_file`` (or the system's CAs) and must
  name the URL's host; a failed handshake is logged with its reason and retried.
- Client id: ``sen broker conf`` brokers replace it with the user name; the options make them agree.
- Reading: :class:`~gateway.service.mqtt_paho.LeanClient` (paho reading whole blocks of the socket).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.retry import Outage

from gateway.service.acks import Ack
from gateway.service.identity import BootTuple
from gateway.service.handler import Message
from gateway.service.intake import Intake
from gateway.service.mqtt_paho import LeanClient, Pubacks, lean_properties
from gateway.service.options import GatewayOptions, mqtt_tls_context, probe_broker
from gateway.service.topics import ACK_FILTER, STATUS_FILTER, TELEMETRY_FILTER

_LOGGER = logging.getLogger(__name__)

_QOS = 1
_CONNECT_FAIL_LOG_EVERY_S = 60.0
# End-to-end acks cost what a device needs, not its message rate: a device's next ack waits
# ack_interval_s per message it sent since its last one, at most _ACK_MAX_DELAY_S (a busy board, or
# one whose backlog drains, is acked once a second), below the shortest ack timeout boards use
# (the firmware's 15 s; `sen sim`'s 2 s): past it a board sends its unacknowledged readings again.
_ACK_MAX_DELAY_S = 1.0
# A device resending what its ack covers lost that ack (a modem dropped it): said again, this seldom.
_ACK_REPEAT_S = 5.0
_ACKS_QUEUED = 2000  # ack publishes paho holds, in flight or not (past it acks wait: they coalesce)
# Mosquitto 2.0 does not hold to receive_max while it delivers a session's backlog (measured:
# 19,000 in flight with a receive maximum of 100). So the input does: past 2 x receive_max messages
# waiting for the intake, paho's thread stops reading the socket until the intake has committed
# some (TCP backpressure; nothing is dropped).
_ROOM_POLL_S = 0.005
# Live or queued: a resumed session's backlog comes first, late by its wait, so it must not anchor
# a boot's clock. At connect the gateway publishes a marker to a topic only it reads, queued behind
# that backlog: messages before it may have waited, those after it are live (Message.live; the
# handler holds the former while a live one of their boot may come). No marker within
# _MARKER_WAIT_S: live again anyway.
_MARKER_WAIT_S = 30.0


def subscriptions(shared_group: str | None) -> tuple[str, ...]:
    telemetry = f"$share/{shared_group}/{TELEMETRY_FILTER}" if shared_group else TELEMETRY_FILTER
    return (telemetry, STATUS_FILTER, ACK_FILTER)


class MqttInput:
    def __init__(self, options: GatewayOptions, intake: Intake, *,
                 topics: tuple[str, ...] | None = None) -> None:  # topics: instead of subscriptions()
        self._endpoint, self._url, self._client_id = options.mqtt, options.mqtt_url, options.client_id
        self._keepalive_s, self._session_expiry_s = options.mqtt_keepalive_s, options.session_expiry_s
        self._receive_max, self._max_waiting = options.receive_max, 2 * options.receive_max
        self._stopping = threading.Event()
        self._forward: tuple[str, Callable[[str, bytes], None]] | None = None
        self.room_waits = self.peak_waiting = 0  # times paho's thread waited for the intake; most seen waiting
        self._watchdog_s, self._intake = options.watchdog_s, intake
        self._subscriptions = subscriptions(options.shared_group) if topics is None else topics
        self._marker_topic = f"sen/v1/_gateway/{options.client_id}/ack"  # the gateway may write acks
        self._live, self._queued_until = True, 0.0  # the marker's wait: its monotonic deadline
        self._lock, self._publish_lock = threading.Lock(), threading.Lock()
        self._connected = self._had_session = self._watchdog_tripped = False
        self._generation = self.watchdog_trips = self.acks_published = 0
        self._outage = Outage(log_every_s=_CONNECT_FAIL_LOG_EVERY_S)  # the broker out of reach
        self._last_message = time.monotonic()
        self._acks: dict[tuple[str, str], Ack | BootTuple] = {}  # a boot: its ack is asked for when due
        self._acks_lock = threading.Lock()  # the intake thread adds, the tick thread flushes too
        self._published: dict[tuple[str, str], Ack] = {}
        self._published_at: dict[tuple[str, str], float] = {}
        self._messages_since: dict[tuple[str, str], int] = {}  # per device, since its last ack
        self._ack_interval_s, self._acks_scanned = options.ack_interval_s, 0.0
        lean_properties()
        self._client = LeanClient(CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=mqtt.MQTTv5)
        self._client.manual_ack_set(True)
        self._pubacks = Pubacks(self._client)  # a batch's PUBACKs in one write
        self._to_ack: list[tuple[int, int]] = []  # (generation, mid) of the batch in hand
        intake.on_batch_end(self._send_pubacks)
        self._client.max_inflight_messages_set(0)  # no limit: with one, every PUBACK back scans all held
        self._client.max_queued_messages_set(_ACKS_QUEUED)
        self._ca_file = options.mqtt_ca_file
        self._tls = mqtt_tls_context(options.mqtt_ca_file) if options.mqtt_tls else None
        if self._tls is not None:
            self._client.tls_set_context(self._tls)  # verifies the certificate and the host name
        if options.mqtt_username:
            self._client.username_pw_set(options.mqtt_username, options.mqtt_password or None)
        self._client.reconnect_delay_set(min_delay=1, max_delay=options.reconnect_max_s)
        client = self._client
        client.on_connect, client.on_connect_fail, client.on_disconnect = (
            self._on_connect, self._on_connect_fail, self._on_disconnect)
        client.on_subscribe, client.on_message = self._on_subscribe, self._on_message
        client.on_publish_fast = self._on_publish  # the usual PUBLISH, without paho's MQTTMessage

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Connect in the background; paho's thread retries until the broker answers."""
        over = "" if self._tls is None else f" over TLS, verified against {self._ca_file or 'the system CAs'}"
        _LOGGER.info("connecting to MQTT broker %s as %r%s", self._url, self._client_id, over)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_max
        self._client.connect_async(self._endpoint.host, self._endpoint.port,
                                   keepalive=self._keepalive_s, clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect; unacknowledged messages stay with the broker for the next start."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False

    def forward(self, topic_filter: str, to: Callable[[str, bytes], None]) -> Callable[[str, bytes], object]:
        """Before start: ``topic_filter``'s messages go to ``to``, not the intake; returns a retained publish."""
        self._subscriptions, self._forward = (*self._subscriptions, topic_filter), (topic_filter, to)
        return lambda topic, payload: self._client.publish(topic, payload, qos=_QOS, retain=True)

    def check_watchdog(self) -> None:
        """Log (once per silence) and count when no message came for ``watchdog_s``."""
        silent = time.monotonic() - self._last_message
        if self._connected and silent >= self._watchdog_s and not self._watchdog_tripped:
            self._watchdog_tripped = True
            self.watchdog_trips += 1
            _LOGGER.warning("no MQTT message for %.0f s (watchdog %s s): are the boards and the "
                            "broker alive?", silent, self._watchdog_s)

    # -- acks, from the intake thread -----------------------------------------------------
    def _done(self, generation: int, mid: int, qos: int, ack: Ack | None) -> None:
        if qos:  # QoS1 (subscribed so): acked with the batch's others (_send_pubacks)
            self._to_ack.append((generation, mid))
        if ack is not None:
            self.note_acks((ack,))

    def note_acks(self, acks: Iterable[Ack | BootTuple]) -> None:
        """End-to-end acks to publish (:meth:`publish_acks`), in the order they were given (an
        Ack, or a boot key whose ack is asked for when due: :class:`~gateway.service.sessions.SessionInput`)."""
        with self._acks_lock:
            waiting, since = self._acks, self._messages_since
            for ack in acks:
                # The device's latest word wins: it may move back to an older boot it still holds
                # (its envelope's ``ob``); within one boot acks only grow.
                key = (ack[0], ack[1])  # (site, device), in either
                waiting[key] = ack
                since[key] = since.get(key, 0) + 1

    def _send_pubacks(self) -> None:
        """After each batch (intake thread): its PUBACKs in one write, on the connection that delivered
        them; under ``_on_disconnect``'s lock, so no reconnect (which empties paho's queue) comes between."""
        pending, self._to_ack = self._to_ack, []
        with self._lock:
            if pending and self._connected:
                self._pubacks.send([mid for generation, mid in pending if generation == self._generation])

    def publish_acks(self, *, force: bool = False) -> None:
        """Publish each device's newest end-to-end ack (retained, QoS1) once it is due: a
        device's acks coalesce (the later one covers the earlier), and the busier the device
        the longer they coalesce (``_ACK_MAX_DELAY_S`` at most). Called after every batch and
        every second; ``force`` (on stop) publishes all that wait."""
        now = time.monotonic()
        if not force and now - self._acks_scanned < self._ack_interval_s / 5:
            return  # looked a moment ago: a scan costs one look per waiting device
        with self._publish_lock:  # one publisher at a time: the intake thread or the tick thread
            self._acks_scanned = now
            with self._acks_lock:
                due = {key: ack for key, ack in self._acks.items() if force or now - self._published_at.get(
                    key, 0.0) >= min(_ACK_MAX_DELAY_S, self._ack_interval_s * self._messages_since.get(key, 1))}
                for key in due:
                    del self._acks[key]
                    self._messages_since.pop(key, None)
            for key, ack in self._resolve(due).items():
                last = self._published.get(key)
                if last is not None and last.covers(ack) and last.anchor == ack.anchor:
                    if force or now - self._published_at.get(key, 0.0) < _ACK_REPEAT_S:
                        continue
                    ack = last  # said again: the device sends what it already has an ack for
                info = self._client.publish(ack.topic(), ack.encode(), qos=_QOS, retain=True)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # paho holds enough: this one waits
                    with self._acks_lock:
                        self._acks.setdefault(key, ack)
                    continue
                self._published[key] = ack
                self._published_at[key] = now
                self.acks_published += 1

    def _resolve(self, due: dict[tuple[str, str], Ack | BootTuple]) -> dict[tuple[str, str], Ack]:
        return {key: ack for key, ack in due.items() if isinstance(ack, Ack)}  # boots: SessionInput

    # -- paho callbacks (all on paho's network thread) ----------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Any) -> None:
        if reason_code.is_failure:
            _LOGGER.error("MQTT broker %s refused the connection: %s", self._url, reason_code)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        self._outage.ended()
        if self._had_session and not flags.session_present:
            _LOGGER.warning("MQTT broker %s lost our session; subscribing again (messages it "
                            "held for us are gone from the broker)", self._url)
        self._had_session = True
        _LOGGER.info("connected to MQTT broker %s (session present: %s)", self._url,
                     flags.session_present)
        # No Local on the acks: this gateway's own acks do not come back to it (only other
        # gateways' acks matter to it); one message saved per ack it publishes.
        client.subscribe([(topic, SubscribeOptions(qos=_QOS, noLocal=topic == ACK_FILTER))
                          for topic in self._subscriptions] + [(self._marker_topic, SubscribeOptions(qos=_QOS))])
        if flags.session_present:  # a backlog may wait for us: queued until the marker is back
            self._live = False
            self._queued_until = time.monotonic() + _MARKER_WAIT_S
            client.publish(self._marker_topic, b"", qos=_QOS)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._outage.failed():
            _LOGGER.error("cannot reach MQTT broker %s (%s); retrying with backoff (attempt %s)",
                          self._url, probe_broker(self._endpoint, self._tls, self._ca_file), self._outage.failures)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Any) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if was_connected and reason_code.is_failure:
            _LOGGER.warning("lost MQTT broker %s (%s); reconnecting", self._url, reason_code)
        elif was_connected:
            _LOGGER.info("disconnected from MQTT broker %s", self._url)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Any) -> None:
        for topic, code in zip(self._subscriptions, reason_codes, strict=False):  # a broker may answer short
            if code.is_failure:
                _LOGGER.error("subscription to %s refused: %s", topic, code)
            else:
                _LOGGER.info("subscribed to %s (QoS %s)", topic, code.value)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # paho's way in (LeanClient hands the usual PUBLISH to _on_publish): a topic that is not UTF-8 has its
        # bad bytes replaced (U+FFFD) and is refused as a bad topic (message.topic would raise in paho's thread)
        self._on_publish(bytes(message._topic).decode("utf-8", "replace"), bytes(message.payload), message.mid,
                         message.qos)

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        now = self._last_message = time.monotonic()
        self._watchdog_tripped = False
        generation = self._generation
        forward = self._forward if self._forward and mqtt.topic_matches_sub(self._forward[0], topic) else None
        if forward is not None:  # not telemetry: never to the intake
            forward[1](topic, payload)
        if forward is not None or topic == self._marker_topic:  # forwarded, or the end of the session's backlog
            self._live |= forward is None
            if qos:
                self._client.ack(mid, qos)
            return
        if not self._live and now > self._queued_until:
            self._live = True  # no marker came back: treat what comes as live again
        waiting = self._intake.waiting
        if waiting > self.peak_waiting:
            self.peak_waiting = waiting
        if qos and waiting >= self._max_waiting:
            self.room_waits += 1
            while self._intake.waiting >= self._receive_max:
                if self._stopping.wait(_ROOM_POLL_S):
                    return  # never queued, never acked: the broker sends it again
        item = Message(topic=topic, payload=payload, received_ms=time.time_ns() // 1_000_000, live=self._live)
        self._intake.put(item, lambda ack: self._done(generation, mid, qos, ack), can_drop=qos == 0)
