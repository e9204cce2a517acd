"""`sen deadletters list|replay|purge`: a spool's dead letters, looked at, sent again, let go.

Everything here works on the spool file while the gateway runs: its own SQLite connection,
each change one transaction (:class:`ingest.deadletters.DeadLetterFile`). ``list`` prints::

    #12  2026-11-22 08:13:20  mqtt:sen/v1/lab/dev-1/telemetry  not_json  7 B
         detail: Expecting value: line 1 column 1 (char 0)
         kept:   garbage

``replay``: lines InfluxDB refused (source ``influx``) go back to the spool's lines, which the
gateway's writer looks at every flush interval (or at its next start); messages from MQTT
(``mqtt:TOPIC``) are republished to their topic with QoS1, and leave the dead letters once the
broker acknowledged them; serial messages, and messages kept only as a sample, stay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ingest.deadletters import MAX_AGE_DAYS, MAX_ROWS, SAMPLE_BYTES, WHOLE_MAX_BYTES, DeadLetterFile
from ingest.errors import SpoolError
from ingest.spool_records import DeadLetter

from gateway.errors import GatewayError

PREVIEW_CHARS = 72
_DAY_MS = 86_400_000
_MQTT_WAIT_S = 10.0


class DeadLetterError(GatewayError):
    """A dead-letter command cannot do what it was asked (no spool, no such id, broker away)."""


@dataclass(frozen=True, kw_only=True)
class Choice:
    """Which dead letters: ``ids``, or every one of ``reason``, older than ``older_than_days``, or all."""

    ids: Sequence[int] | None = None
    reason: str | None = None
    older_than_days: float | None = None
    everything: bool = False


@dataclass(frozen=True, kw_only=True)
class Broker:
    url: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_flags(cls, url: str | None, *, username: str | None = None,
                   password_file: Path | None = None) -> Broker | None:
        if url is None:
            if username or password_file:
                raise DeadLetterError("--username and --password-file go with --mqtt URL")
            return None
        from gateway.service.options import parse_mqtt_url

        endpoint = parse_mqtt_url(url, option="--mqtt")
        try:
            password = password_file.read_text(encoding="utf-8").strip() if password_file else None
        except OSError as err:
            raise DeadLetterError(f"--password-file: cannot read {password_file}: {err.strerror or err}") from None
        return cls(url=url, host=endpoint.host, port=endpoint.port, username=username, password=password)


def _open(spool_dir: Path) -> DeadLetterFile:
    try:
        return DeadLetterFile(spool_dir)
    except SpoolError as err:
        raise DeadLetterError(str(err)) from None


def _chosen(letters: DeadLetterFile, choice: Choice) -> list[DeadLetter]:
    if choice.ids:
        found = letters.select(ids=choice.ids)
        missing = sorted(set(choice.ids) - {d.id for d in found})
        if missing:
            raise DeadLetterError(f"no dead letter with id {format_ids(missing)} in {letters.path}; nothing done")
        return found
    if choice.reason is not None:
        return letters.select(reason=choice.reason)
    if choice.older_than_days is not None:
        return letters.select(before_ms=time.time_ns() // 1_000_000 - int(choice.older_than_days * _DAY_MS))
    if choice.everything:
        return letters.select()
    raise DeadLetterError("say which dead letters: --id N ..., --reason R or --all")


def format_ids(ids: Sequence[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7]."""
    spans: list[list[int]] = []
    for i in sorted(ids):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in spans)


def preview(raw: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The start of ``raw`` as one printable line (escapes for anything else)."""
    text = raw[:limit * 4].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return shown[:limit] + ("..." if len(shown) > limit or len(raw) > limit * 4 else "")


def _size(letter: DeadLetter) -> str:
    return f"{letter.size} B" if letter.whole else f"{letter.size} B (first {len(letter.raw)} B kept)"


def format_letter(letter: DeadLetter) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.added_ms / 1000))
    return (f"#{letter.id}  {when}  {letter.source}  {letter.reason}  {_size(letter)}\n"
            f"     detail: {preview(letter.detail.encode(), 200)}\n"
            f"     kept:   {preview(letter.raw)}")


def list_letters(spool_dir: Path, *, reason: str | None, limit: int, out: TextIO) -> int:
    with _open(spool_dir) as letters:
        shown = letters.select(reason=reason, limit=limit)
        held, dropped = letters.counts()
    for letter in shown:
        print(format_letter(letter), file=out)
    which = f" of reason {reason}" if reason else ""
    print(f"{len(shown)} dead letter(s){which} shown, {held} held in {spool_dir}; {dropped} dropped so far "
          f"by the bound ({MAX_ROWS} rows, {MAX_AGE_DAYS:g} days, oldest first)", file=out)
    for worker, count in _workers_letters(spool_dir):
        print(f"worker {worker.name}'s spool (sen gateway run --workers N) holds {count} more: "
              f"sen deadletters list --spool {worker}", file=out)
    return 0


def _workers_letters(spool_dir: Path) -> list[tuple[Path, int]]:
    """(worker spool folder, dead letters held) for each worker spool under ``spool_dir`` that holds
    some: each worker of ``--workers N`` sets aside what it refuses in its own spool, ids its own."""
    from ingest.spool import SPOOL_FILE

    from gateway.service.sessions import leftovers, worker_dir

    found: list[tuple[Path, int]] = []
    for folder in (worker_dir(spool_dir, index) for index in leftovers(spool_dir, 0)):  # every worker folder
        if (folder / SPOOL_FILE).is_file():
            with _open(folder) as letters:
                held, _ = letters.counts()
            if held:
                found.append((folder, held))
    return found


def purge(spool_dir: Path, choice: Choice, *, out: TextIO) -> int:
    with _open(spool_dir) as letters:
        ids = [d.id for d in _chosen(letters, choice)]
        gone = letters.delete(ids) if ids else 0
    print(f"purged {gone} dead letter(s)" + (f" (ids {format_ids(ids)})" if ids else "") + f" from {spool_dir}",
          file=out)
    return 0


def replay(spool_dir: Path, choice: Choice, *, broker: Broker | None, out: TextIO) -> int:
    """Replay what can be; say what was done and what stays. 0 when nothing chosen stays."""
    with _open(spool_dir) as letters:
        chosen = _chosen(letters, choice)
        if not chosen:
            print("no dead letters match: nothing replayed", file=out)
            return 0
        lines = [d for d in chosen if d.source == "influx" and d.whole]
        messages = [d for d in chosen if d.source.startswith("mqtt:") and d.whole]
        kept = {d.id for d in lines + messages}
        left = [d for d in chosen if d.id not in kept]
        if lines:
            moved, count = letters.requeue([d.id for d in lines])
            print(f"requeued {count} refused line(s) (ids {format_ids(moved)}) into the spool: the gateway "
                  f"writes them within its flush interval, or at its next start", file=out)
            if len(moved) < len(lines):
                print(f"ids {format_ids(sorted({d.id for d in lines} - set(moved)))}: gone meanwhile "
                      f"(dropped by the bound or purged)", file=out)
        if messages and broker is None:
            print(f"left {len(messages)} MQTT message(s) (ids {format_ids([d.id for d in messages])}): "
                  f"give --mqtt URL to republish them to their topics", file=out)
            left += messages
        elif messages and broker is not None:
            done, refused = _republish(broker, messages)
            letters.delete([d.id for d in done])
            if done:
                print(f"republished {len(done)} message(s) (ids {format_ids([d.id for d in done])}) to "
                      f"{broker.url} with QoS1: a gateway that decodes them now takes them, one that "
                      f"does not sets them aside again", file=out)
            for letter, why in refused:
                print(f"left #{letter.id}: the broker did not take it: {why}", file=out)
            left += [d for d, _ in refused]
    _say_left(left, out)
    return 1 if left else 0


def _say_left(left: list[DeadLetter], out: TextIO) -> None:
    serial = [d.id for d in left if d.source.startswith("serial:")]
    sampled = [d.id for d in left if not d.whole and not d.source.startswith("serial:")]
    other = [d.id for d in left if d.whole and d.source != "influx" and not d.source.startswith(("serial:", "mqtt:"))]
    if serial:
        print(f"left {len(serial)} serial message(s) (ids {format_ids(serial)}): a message from a serial board "
              f"cannot be replayed (there is no way to hand it back to the board); purge it when done", file=out)
    if sampled:
        print(f"left {len(sampled)} message(s) kept as a sample (ids {format_ids(sampled)}): over "
              f"{WHOLE_MAX_BYTES} B, only their first {SAMPLE_BYTES} B were kept, so they cannot be replayed",
              file=out)
    if other:
        print(f"left {len(other)} dead letter(s) of an unknown source (ids {format_ids(other)})", file=out)


def _republish(broker: Broker, letters: Sequence[DeadLetter]) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Publish each message to its topic (QoS1); (those the broker acknowledged, the others and why)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    answer: dict[str, Any] = {}
    connected = threading.Event()
    acked = threading.Condition()
    acks: dict[int, Any] = {}

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, code: Any, _p: Any) -> None:
        answer["code"] = code
        connected.set()

    def on_publish(_c: mqtt.Client, _u: Any, mid: int, code: Any, _p: Any) -> None:
        with acked:
            acks[mid] = code
            acked.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as err:
        raise DeadLetterError(f"cannot reach the broker at {broker.url}: {err.strerror or err}") from None
    client.loop_start()
    try:
        if not connected.wait(_MQTT_WAIT_S):
            raise DeadLetterError(f"the broker at {broker.url} did not answer CONNECT within {_MQTT_WAIT_S:g} s")
        if answer["code"].is_failure:
            raise DeadLetterError(f"the broker at {broker.url} refused the connection: {answer['code']}")
        sent: list[tuple[DeadLetter, int]] = []
        refused: list[tuple[DeadLetter, str]] = []
        for letter in letters:
            try:
                info = client.publish(letter.source.removeprefix("mqtt:"), letter.raw, qos=1)
            except ValueError as err:
                refused.append((letter, str(err)))
                continue
            sent.append((letter, info.mid))
        deadline = time.monotonic() + _MQTT_WAIT_S
        with acked:
            while any(mid not in acks for _, mid in sent) and (remaining := deadline - time.monotonic()) > 0:
                acked.wait(remaining)
            results = dict(acks)
    finally:
        client.disconnect()
        client.loop_stop()
    done: list[DeadLetter] = []
    for letter, mid in sent:
        code = results.get(mid)
        if code is None:
            refused.append((letter, f"no PUBACK within {_MQTT_WAIT_S:g} s"))
        elif code.is_failure:
            refused.append((letter, str(code)))
        else:
            done.append(letter)
    return done, refused
