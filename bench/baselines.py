"""The baselines Sen's gateway is measured against, each run as its own process.

- ``ceiling``: a bare paho-mqtt subscriber (QoS1, same topics) that only counts messages:
  the most any Python MQTT consumer on this machine can take.
- ``parse``: the bare subscriber that also parses each message's JSON (``json.loads``) to count
  its readings: the ceiling of any Python consumer that reads what it receives (Sen must at
  least parse, check and store; this shows what the parsing alone leaves).
- ``lean``: the bare subscriber on the gateway's own MQTT reader (``LeanClient``, MQTT v5, each
  message acked as it comes): what the reading alone costs once paho's per-packet work is gone, for
  the reading of Sen's ratio (its target is against ``ceiling``, the plain paho subscriber).
- ``naive``: what tutorials show: paho's on_message writes each message to InfluxDB with one
  HTTP request, no batching, no spool.

Usage: python -m bench.baselines {ceiling|parse|lean|naive} --mqtt-port P [--influx URL --database DB] --count-file F
        [--persistent]
The process writes the number of readings it handled to F every 100 ms. ``--persistent``
keeps its session (clean session off, the same client id), so it can drain a backlog the
broker queued while it was away.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import urllib.request
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.service.mqtt_paho import LeanClient

TOPIC = "sen/v1/+/+/telemetry"


def _line(site: str, device: str, reading: dict[str, object]) -> str:
    metrics = cast(dict[str, float], reading["m"])
    fields = ",".join(f"{k}={v}" for k, v in metrics.items())
    return f"telemetry,site={site},device={device},board=bench {fields},seq={reading['seq']}i {reading['ts']}"


def main() -> int:
    parser = argparse.ArgumentParser(description="Baseline MQTT consumers for the benchmarks.")
    parser.add_argument("kind", choices=["ceiling", "parse", "lean", "naive"])
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--influx", default="")
    parser.add_argument("--database", default="")
    parser.add_argument("--count-file", type=Path, required=True)
    parser.add_argument("--persistent", action="store_true", help="keep the session: drain a queued backlog")
    args = parser.parse_args()

    count = 0
    lock = threading.Lock()
    write_url = f"{args.influx}/write?db={args.database}&precision=ms"

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count
        if args.kind == "ceiling":
            n = message.payload.count(b'"seq"')  # counting only: no decode
        elif args.kind == "parse":
            n = len(json.loads(message.payload)["r"])
        else:
            doc = json.loads(message.payload)
            _, _, site, device, _ = message.topic.split("/")
            body = "\n".join(_line(site, device, r) for r in doc["r"]).encode()
            urllib.request.urlopen(urllib.request.Request(write_url, data=body, method="POST"), timeout=10).close()
            n = len(doc["r"])
        with lock:
            count += n

    def on_publish(topic: str, payload: bytes, mid: int, qos: int) -> None:  # lean: counting, as ceiling
        nonlocal count
        n = payload.count(b'"seq"')
        if qos:
            client.ack(mid, qos)
        with lock:
            count += n

    subscribed = threading.Event()
    client: mqtt.Client
    if args.kind == "lean":
        client = lean = LeanClient(CallbackAPIVersion.VERSION2, client_id="bench-lean", protocol=mqtt.MQTTv5)
        client.manual_ack_set(True)
        lean.on_publish_fast = on_publish
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600 if args.persistent else 0
        client.connect("127.0.0.1", args.mqtt_port, keepalive=60, clean_start=not args.persistent,
                       properties=props)
    else:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{args.kind}",
                             clean_session=not args.persistent, protocol=mqtt.MQTTv311)
        client.on_message = on_message
        client.connect("127.0.0.1", args.mqtt_port, keepalive=60)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(TOPIC, qos=1)
    client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
    client.loop_start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    written = -1
    while not stop.wait(0.01):  # the runner looks every 10 ms near a run's end: a count is never older
        if not subscribed.is_set():
            continue  # no count file until the subscription stands: the runner waits for it
        with lock:
            now = count
        if now != written:
            args.count_file.write_text(str(now))
            written = now
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
