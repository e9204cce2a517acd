"""`sen sim --fault-plan` end to end: each documented fault kind, run by the real `sen sim` process
against the real Mosquitto (or on its pseudo-terminals), has its visible effect.

Two runs, each shared by the tests of its module part (one process start each keeps the suite fast):

- MQTT, one board per fault, through the fault proxy: cut, stall, power cut + restart, sensor
  nack / stuck / range, clock jump. A paho subscriber (persistent session, QoS1) records every
  envelope and status with its arrival time; the boards' console logs are in their flash dirs.
- Serial: garbage and unplug/replug, read with pyserial on the boards' stable links.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import serial
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devstack import Mosquitto
from gateway.service.serial_frame import Outcome, parse_line
from tests.integration.helpers import sen_process

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

INTERVAL_MS = 200
CLOCK_JUMP_MS = 3_600_000
# MQTT boards by index: the fault each one gets
CUT, STALL, POWER, NACK, STUCK_RANGE, CLOCK = range(6)
FAULT_AT_S, HEAL_AT_S, RUN_S = 2.5, 5.0, 9.0
MQTT_PLAN = [
    {"at_s": FAULT_AT_S, "fault": "cut", "board": CUT},
    {"at_s": HEAL_AT_S, "fault": "heal", "board": CUT},
    {"at_s": FAULT_AT_S, "fault": "stall", "board": STALL},
    {"at_s": HEAL_AT_S, "fault": "heal", "board": STALL},
    {"at_s": FAULT_AT_S, "fault": "power_cut", "board": POWER},
    {"at_s": FAULT_AT_S + 1, "fault": "restart", "board": POWER},
    {"at_s": FAULT_AT_S, "fault": "sensor", "board": NACK, "sensor": "sht31", "value": "nack"},
    {"at_s": HEAL_AT_S, "fault": "sensor", "board": NACK, "sensor": "sht31", "value": None},
    {"at_s": FAULT_AT_S, "fault": "sensor", "board": STUCK_RANGE, "sensor": "bme280", "value": "stuck"},
    {"at_s": FAULT_AT_S, "fault": "sensor", "board": STUCK_RANGE, "sensor": "dht20", "value": "range"},
    {"at_s": FAULT_AT_S, "fault": "clock_jump", "board": CLOCK, "offset_ms": CLOCK_JUMP_MS},
]


def device(index: int) -> str:
    return f"sim-{index:04d}"


_FAULT_LINE = re.compile(r"^(\S+ \S+) INFO +hardware\.faults: fault at [\d.]+ s: (\w+) on (\S+)", re.M)


def fault_times(sim_log: str) -> dict[tuple[str, str], float]:
    """(fault, device) -> when `sen sim` applied it (time.time()), from its log."""
    return {(kind, dev): datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for stamp, kind, dev in _FAULT_LINE.findall(sim_log)}


@dataclass
class Envelope:
    at: float  # arrival, time.time()
    doc: dict[str, Any]


@dataclass
class MqttRun:
    state_dir: Path
    telemetry: dict[str, list[Envelope]] = field(default_factory=dict)
    status: dict[str, list[Envelope]] = field(default_factory=dict)
    sim_log: str = ""

    def envelopes(self, index: int) -> list[Envelope]:
        return self.telemetry.get(device(index), [])

    def console(self, index: int) -> str:
        return (self.state_dir / device(index) / "console.log").read_text(errors="replace")

    def seqs(self, index: int, boot: int) -> set[int]:
        return {r["seq"] for e in self.envelopes(index) if e.doc["boot"] == boot for r in e.doc["r"]}

    def fault_time(self, fault: str, index: int) -> float:
        """When the plan applied FAULT to board INDEX, on the wall clock."""
        found = fault_times(self.sim_log).get((fault, device(index)))
        assert found is not None, f"no {fault} on {device(index)} in the sim log:\n{self.sim_log[-3000:]}"
        return found


class Recorder:
    def __init__(self, broker: Mosquitto, run: MqttRun) -> None:
        self.run = run
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"simf-{uuid.uuid4().hex[:8]}",
                                  clean_session=False)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.subscribe([("sen/v1/simf/+/telemetry", 1), ("sen/v1/simf/+/status", 1)])
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        _, _, _, dev, kind = msg.topic.split("/")
        book = self.run.telemetry if kind == "telemetry" else self.run.status
        with self._lock:
            book.setdefault(dev, []).append(Envelope(time.time(), json.loads(msg.payload)))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def mqtt_run(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttRun]:
    tmp = tmp_path_factory.mktemp("sim-faults-mqtt")
    plan = tmp / "plan.json"
    plan.write_text(json.dumps(MQTT_PLAN))
    run = MqttRun(state_dir=tmp / "boards")
    recorder = Recorder(mosquitto, run)
    log = tmp / "sim.log"
    try:
        sim = sen_process("sim", "--mqtt", mosquitto.url, "--boards", "6", "--interval-ms", str(INTERVAL_MS),
                          "--batch-max", "5", "--duration", str(RUN_S), "--site", "simf",
                          "--ack-timeout-ms", "1000", "--fault-plan", str(plan), "--state-dir", str(run.state_dir),
                          log=log)
        try:
            code = sim.wait(timeout=RUN_S + 60)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        time.sleep(0.5)  # the last PUBACKed envelopes on their way to the recorder
    finally:
        recorder.close()
    run.sim_log = log.read_text(errors="replace")
    assert code == 0, run.sim_log[-3000:]
    yield run


def _readings_after(run: MqttRun, index: int, t: float) -> list[dict[str, Any]]:
    return [r for e in run.envelopes(index) if e.at >= t for r in e.doc["r"]]


def test_a_cut_link_makes_the_board_reconnect_and_lose_nothing(mqtt_run: MqttRun) -> None:
    console = mqtt_run.console(CUT)
    assert "mqtt: connection lost" in console or "mqtt: error" in console, console[-2000:]
    assert console.count("mqtt: connected to") >= 2, console[-2000:]
    later = [e.doc["d"].get("reconnects", 0) for e in mqtt_run.envelopes(CUT)
             if e.at > mqtt_run.fault_time("heal", CUT) and "d" in e.doc]
    assert later and max(later) >= 1, "the board's diagnostics do not count the reconnect"
    cut_at, heal_at = mqtt_run.fault_time("cut", CUT), mqtt_run.fault_time("heal", CUT)
    during = [e for e in mqtt_run.envelopes(CUT) if cut_at + 0.3 < e.at < heal_at - 0.1]
    assert not during, f"{len(during)} envelopes arrived through a cut link"
    seqs = mqtt_run.seqs(CUT, 1)
    assert seqs == set(range(1, max(seqs) + 1)), "readings lost across the cut"
    assert _readings_after(mqtt_run, CUT, heal_at), "nothing arrived after the link healed"


def test_a_stalled_link_holds_readings_back_then_delivers_them(mqtt_run: MqttRun) -> None:
    stall_at, heal_at = mqtt_run.fault_time("stall", STALL), mqtt_run.fault_time("heal", STALL)
    during = [e for e in mqtt_run.envelopes(STALL) if stall_at + 0.3 < e.at < heal_at - 0.1]
    assert not during, f"{len(during)} envelopes arrived through a stalled link"
    seqs = mqtt_run.seqs(STALL, 1)
    assert seqs == set(range(1, max(seqs) + 1)), "readings lost across the stall"
    # readings sampled during the stall arrive after the heal
    sampled_during = int((HEAL_AT_S - FAULT_AT_S) * 1000 / INTERVAL_MS)
    after = _readings_after(mqtt_run, STALL, heal_at)
    assert len(after) >= sampled_during, f"only {len(after)} readings after the heal"


def test_a_power_cut_and_restart_increment_boot_and_lose_nothing(mqtt_run: MqttRun) -> None:
    console = mqtt_run.console(POWER)
    assert console.count("Sen firmware") == 2 and "boot=2" in console, console[-2000:]
    boots = {e.doc["boot"] for e in mqtt_run.envelopes(POWER)}
    assert boots == {1, 2}, boots
    for boot in (1, 2):
        seqs = mqtt_run.seqs(POWER, boot)
        assert seqs == set(range(1, max(seqs) + 1)), f"readings of boot {boot} lost"
    assert "exited with code" not in mqtt_run.sim_log, "a power cut reported as a failed board"


def _errors(run: MqttRun, index: int, sensor: str) -> list[str | None]:
    return [e.doc.get("d", {}).get(f"e_{sensor}") for e in run.envelopes(index) if "d" in e.doc]


def test_a_sensor_nack_shows_in_diagnostics_and_clears(mqtt_run: MqttRun) -> None:
    errors = _errors(mqtt_run, NACK, "sht31")
    assert "nack" in errors, errors
    assert errors[-1] is None, "e_sht31 still set after the fault was cleared"
    heal_at = max(t for (kind, dev), t in fault_times(mqtt_run.sim_log).items()
                  if kind == "sensor" and dev == device(NACK))
    assert any("rh_pct" in r["m"] for r in _readings_after(mqtt_run, NACK, heal_at + 1)), \
        "no SHT31 readings after the fault was cleared"


def test_an_out_of_range_sensor_shows_in_diagnostics(mqtt_run: MqttRun) -> None:
    assert "range" in _errors(mqtt_run, STUCK_RANGE, "dht20")
    assert _readings_after(mqtt_run, STUCK_RANGE, mqtt_run.fault_time("sensor", STUCK_RANGE) + 1), \
        "the healthy SHT31 stopped reporting too"


def test_a_stuck_sensor_shows_as_stuck_in_diagnostics(mqtt_run: MqttRun) -> None:
    errors = _errors(mqtt_run, STUCK_RANGE, "bme280")
    assert "stuck" in errors, f"e_bme280 values seen: {sorted({e for e in errors if e})}"


def test_a_stuck_sensor_is_flagged(mqtt_run: MqttRun) -> None:
    """Whatever its name, the board flags the BME280 that repeats itself."""
    assert any(e for e in _errors(mqtt_run, STUCK_RANGE, "bme280")), "e_bme280 never set"


def test_a_clock_jump_moves_the_readings_timestamps(mqtt_run: MqttRun) -> None:
    jump_at = mqtt_run.fault_time("clock_jump", CLOCK)
    before = [r["ts"] - e.at * 1000 for e in mqtt_run.envelopes(CLOCK) if e.at < jump_at
              for r in e.doc["r"] if "ts" in r]
    after = [r["ts"] - e.at * 1000 for e in mqtt_run.envelopes(CLOCK) if e.at > jump_at + 1
             for r in e.doc["r"] if "ts" in r]
    assert before and after, "readings without ts"
    assert max(abs(x) for x in before) < 10_000, "the clock was off before the jump"
    assert all(abs(x - CLOCK_JUMP_MS) < 10_000 for x in after), \
        f"ts did not jump by {CLOCK_JUMP_MS} ms: offsets {sorted(after)[:3]}..{sorted(after)[-3:]}"


# -- serial boards: garbage, unplug/replug -------------------------------------------------------
GARBAGE, UNPLUG = 0, 1
SERIAL_PLAN: list[dict[str, Any]] = [
    {"at_s": 2.0, "fault": "garbage", "board": GARBAGE, "bytes": 300, "seed": 7},
    {"at_s": 2.0, "fault": "unplug", "board": UNPLUG},
    {"at_s": 3.5, "fault": "replug", "board": UNPLUG},
]
SERIAL_RUN_S = 7.0


@dataclass
class PortLog:
    outcomes: list[tuple[float, Outcome, int | None]] = field(default_factory=list)  # time, kind, boot
    raw: list[tuple[float, bytes]] = field(default_factory=list)  # every line as read
    errors: list[float] = field(default_factory=list)  # when the port failed under the reader
    ttys: list[str] = field(default_factory=list)  # the device each (re)open reached


def _read_port(link: Path, log: PortLog, stop: threading.Event) -> None:
    """A host program on the board's stable link: reads lines, reopens after an unplug."""
    while not stop.is_set():
        try:
            port = serial.Serial(str(link), 115200, timeout=0.2)
        except (serial.SerialException, OSError):
            time.sleep(0.05)
            continue
        log.ttys.append(str(link.resolve()))
        with port:
            while not stop.is_set():
                try:
                    line = port.readline()
                except (serial.SerialException, OSError):
                    log.errors.append(time.time())
                    break
                if line:
                    log.raw.append((time.time(), line))
                    parsed = parse_line(line)
                    log.outcomes.append((time.time(), parsed.outcome, parsed.message.get("boot")))


SerialRun = tuple[dict[tuple[str, str], float], list[PortLog]]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SerialRun]:
    tmp = tmp_path_factory.mktemp("sim-faults-serial")
    plan = tmp / "plan.json"
    plan.write_text(json.dumps(SERIAL_PLAN))
    dev = tmp / "dev"
    logs = [PortLog(), PortLog()]
    stop = threading.Event()
    readers = [threading.Thread(target=_read_port, args=(dev / f"ttySIM{i}", logs[i], stop), daemon=True)
               for i in range(2)]
    for reader in readers:
        reader.start()
    sim = sen_process("sim", "--serial", "--boards", "2", "--interval-ms", str(INTERVAL_MS), "--duration",
                      str(SERIAL_RUN_S), "--site", "simfs", "--ack-timeout-ms", "1000",
                      "--fault-plan", str(plan), "--state-dir", str(tmp / "boards"), "--dev-dir", str(dev),
                      log=tmp / "sim.log")
    try:
        code = sim.wait(timeout=SERIAL_RUN_S + 60)
    finally:
        stop.set()
        if sim.poll() is None:
            sim.kill()
            sim.wait()
        for reader in readers:
            reader.join(timeout=2)
    sim_log = (tmp / "sim.log").read_text(errors="replace")
    assert code == 0, sim_log[-3000:]
    yield fault_times(sim_log), logs


def test_garbage_on_serial_is_skipped_and_frames_go_on(serial_run: SerialRun) -> None:
    times, logs = serial_run
    log = logs[GARBAGE]
    step = SERIAL_PLAN[0]
    garbage = random.Random(step["seed"]).randbytes(int(step["bytes"]))  # what VirtualBoard.garbage sends
    piece = max(garbage.split(b"\n"), key=len)
    hits = [(t, line) for t, line in log.raw if piece[:16] in line]
    assert hits, "the injected garbage never reached the host"
    at = hits[0][0]
    assert at >= times[("garbage", "sim-0000")] - 0.1
    # the host sees it as noise, never as a frame, and good frames go on after it
    assert all(not parse_line(line).outcome.is_frame for _, line in hits)
    assert any(o == Outcome.TELEMETRY for t, o, _ in log.outcomes if t > at), "no frames after the garbage"


def test_unplug_breaks_the_port_and_replug_brings_the_board_back(serial_run: SerialRun) -> None:
    times, logs = serial_run
    log = logs[UNPLUG]
    unplug_at, replug_at = times[("unplug", "sim-0001")], times[("replug", "sim-0001")]
    assert any(abs(t - unplug_at) < 1 for t in log.errors), "the open port did not fail when the board was unplugged"
    assert len(log.ttys) >= 2, f"the host never reopened the port after the replug: {log.ttys}"
    during = [t for t, o, _ in log.outcomes if unplug_at + 0.5 < t < replug_at - 0.1]
    assert not during, "lines read while the board was unplugged"
    after = {boot for t, o, boot in log.outcomes if t > replug_at and o == Outcome.TELEMETRY}
    before = {boot for t, o, boot in log.outcomes if t < unplug_at and o == Outcome.TELEMETRY}
    assert after and after == before, f"frames after the replug: boots {after}, before {before}"
