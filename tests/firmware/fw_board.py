"""Helpers for the firmware tests: a board (the real firmware on the MicroPython unix port,
in a private flash directory), an MQTT collector (paho-mqtt), and a payload-v1 checker that
follows the contract (DESIGN.md at the repo root, tests/contract), not the gateway's code: the
two sides are pinned to the contract apart."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hardware import vboard

NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")
METRIC_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_MESSAGE = 4096


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def board_config(host: str, port: int, device: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "site": "fwtest", "device_id": device, "board": "sim",
        "broker": {"host": host, "port": port, "keepalive": 30},
        "interval_ms": 50, "batch_max": 10, "max_readings": 20,
        "sim": {"seed": 7},
    }
    cfg.update(over)
    return cfg


def build_mpy(micropython: str, repo_root: Path) -> Path:
    """The simulator's .mpy cache (hardware.vboard.build_mpy: mpy-cross for firmware/lib and
    hardware/simdev, rebuilt when a source changes), under the temp dir, shared by workers."""
    out = vboard.build_mpy(Path(tempfile.gettempdir()) / "sen-mpy", micropython)
    if out is None:
        raise AssertionError("mpy-cross not found beside micropython")
    return out


class Board:
    def __init__(self, micropython: str, repo_root: Path, flash: Path, heap: str | None = "128K",
                 mpy: bool = True):
        self.env = dict(os.environ)
        if mpy:
            self.env["SEN_MPY"] = str(build_mpy(micropython, repo_root))
        self.cmd = [micropython] + (["-X", f"heapsize={heap}"] if heap else [])
        self.cmd.append(str(repo_root / "firmware" / "main.py"))
        self.flash = flash
        flash.mkdir(parents=True, exist_ok=True)
        self.console = flash / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, cfg: dict[str, Any] | str) -> None:
        text = cfg if isinstance(cfg, str) else json.dumps(cfg)
        (self.flash / "config.json").write_text(text)

    def start(self) -> None:
        with open(self.console, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=self.flash, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def output(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern, re.M)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            m = rx.search(self.output())
            if m:
                found.append(m)
            return bool(m) or (self.proc is not None and self.proc.poll() is not None)

        wait_for(seen, timeout, f"console line /{pattern}/")
        if not found:
            raise AssertionError(f"board exited without /{pattern}/:\n{self.output()}")
        return found[0]

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"board did not exit within {timeout} s:\n{self.output()}")

    def run(self, timeout: float = 30) -> int:
        self.start()
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Collector:
    """Subscribes to sen/v1/+/+/# and keeps every message (topic, payload, retain)."""

    def __init__(self, host: str, port: int, client_id: str = "", clean: bool = True):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("collector: no SUBACK")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any = None) -> None:
        client.subscribe("sen/v1/+/+/#", qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.msgs.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.msgs if t == topic]

    def envelopes(self, site: str, device: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p, _ in self.on(f"sen/v1/{site}/{device}/telemetry")]

    def seqs(self, site: str, device: str) -> list[int]:
        return [r["seq"] for e in self.envelopes(site, device) for r in e["r"]]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_envelope(raw: bytes, device: str, board: str, now_ms: int) -> dict[str, Any]:
    """Checks one telemetry message against payload v1 (DESIGN.md at the repo root); returns it decoded."""
    assert len(raw) <= MAX_MESSAGE, f"{len(raw)} B > 4 KiB"
    env = json.loads(raw)
    assert env["v"] == 1 and type(env["v"]) is int
    assert env["dev"] == device and NAME_RE.fullmatch(env["dev"])
    assert type(env["boot"]) is int and env["boot"] >= 1
    assert type(env["up"]) is int and env["up"] >= 0
    assert env["board"] == board
    assert isinstance(env["r"], list) and env["r"]
    for r in env["r"]:
        assert type(r["seq"]) is int and r["seq"] >= 1
        assert ("ts" in r) or ("up" in r), r
        # the sensor that produced it (DESIGN.md, Payload: r[].s)
        assert isinstance(r.get("s"), str) and NAME_RE.fullmatch(r["s"]), r
        if "ts" in r:
            assert type(r["ts"]) is int and abs(r["ts"] - now_ms) < 120_000, (r["ts"], now_ms)
        else:
            assert type(r["up"]) is int and 0 <= r["up"] <= env["up"]
        assert isinstance(r["m"], dict) and r["m"]
        for k, v in r["m"].items():
            assert METRIC_RE.fullmatch(k) and _number(v), (k, v)
    d = env.get("d", {})
    assert isinstance(d, dict)
    for k, v in d.items():
        assert METRIC_RE.fullmatch(k), k
        assert _number(v) or (isinstance(v, str) and len(v) <= 64), (k, v)
    return env


def shape(doc: Any) -> Any:
    """The key structure of a JSON document: dicts by key, lists by their first item, types."""
    if isinstance(doc, dict):
        return {k: shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [shape(doc[0])] if doc else []
    if isinstance(doc, bool):
        return "bool"
    if isinstance(doc, (int, float)):
        return "number"
    return type(doc).__name__
