"""The cellular transport (firmware/lib/cellular.py + modem_sim7080.py) on the real
MicroPython VM, against a scripted SIM7080G on its UART (a small modem model in the test:
power via PWRKEY, echo, SIM, registration that takes a few polls, PDP, the MQTT session,
AT+SMPUB with its prompt, +SMSUB/+SMSTATE/+APP PDP/RDY URCs). The state machine's path from
a cold start, the recovery ladder through an MQTT drop, a PDP drop, a modem reset and a
silent modem (each rung logged and counted), and a board with no SIM, no coverage or a
denied registration saying why and connecting once the network comes; every publish the
modem took (its OK) is sent once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.firmware

PRELUDE = r"""
import sys, json, time
sys.path.insert(1, %r)
import asyncio
import cellcfg

LOG = []
def log(m):
    LOG.append(m)
    print(json.dumps(["log", m]))

class Modem:  # a scripted SIM7080G: the UART (readinto/write) and PWRKEY (pulse)
    def __init__(self):
        self.on = False
        self.out = b""
        self.w = b""
        self.sim = True
        self.cover = True  # coverage: registration comes after reg_polls polls
        self.deny = False
        self.silent = False
        self.reg_polls = 2
        self.cmds = []
        self.pubs = []  # (topic, msg) the "broker" got
        self.pulses = 0
        self.boot()
    def boot(self):
        self.echo = True
        self.polls = 0
        self.pdp = self.mqtt = False
        self.subs = []
        self.pending = None  # (topic, length) after AT+SMPUB, waiting for the data
    def say(self, s):
        if self.on and not self.silent:
            self.out += s.encode() if isinstance(s, str) else s
    def readinto(self, b):
        if not self.out:
            return None
        n = 7 if len(self.out) > 7 else len(self.out)  # small reads: lines split
        b[:n] = self.out[:n]
        self.out = self.out[n:]
        return n
    def pulse(self, ms):
        self.pulses += 1
        self.silent = False  # hung until its power is cut
        self.on = not self.on
        if self.on:
            self.boot()
            self.say("\r\nRDY\r\n")
    def reset(self):  # the modem reboots by itself
        self.boot()
        self.say("\r\nRDY\r\n\r\n+CFUN: 1\r\n")
    def drop_mqtt(self):
        self.mqtt = False
        self.say("\r\n+SMSTATE: 0\r\n")
    def drop_pdp(self):
        self.pdp = self.mqtt = False
        self.say("\r\n+APP PDP: 0,DEACTIVE\r\n")
    def deliver(self, topic, msg):
        if self.mqtt and topic in self.subs:
            self.say('\r\n+SMSUB: "%%s","%%s"\r\n' %% (topic, msg))
    def write(self, b):
        if not self.on:
            return
        if self.pending:
            t, n = self.pending
            self.w += b.encode() if isinstance(b, str) else bytes(b)
            if len(self.w) >= n:
                self.pubs.append((t, self.w[:n].decode()))
                self.w = self.w[n:]
                self.pending = None
                self.say("\r\nOK\r\n")
            return
        self.w += b.encode() if isinstance(b, str) else bytes(b)
        while b"\r" in self.w:
            i = self.w.find(b"\r")
            c = self.w[:i].decode()
            self.w = self.w[i + 1:]
            self.cmds.append(c)
            if self.silent:
                continue
            if self.echo:
                self.say(c + "\r")
            self.answer(c)
    def ok(self, *lines):
        for l in lines:
            self.say("\r\n" + l + "\r\n")
        self.say("\r\nOK\r\n")
    def answer(self, c):
        if c == "ATE0":
            self.echo = False
            return self.ok()
        if c == "AT+CPIN?":
            return self.ok("+CPIN: READY") if self.sim else self.say("\r\n+CME ERROR: 10\r\n")
        if c == "AT+CEREG?":
            self.polls += 1
            st = 3 if self.deny else 1 if self.cover and self.polls > self.reg_polls else 2
            return self.ok('+CEREG: 2,%%d,"1A2B","01A2B3C4",7' %% st if st == 1 else "+CEREG: 2,%%d" %% st)
        if c == "AT+CSQ":
            return self.ok("+CSQ: 20,99")
        if c == "AT+COPS?":
            return self.ok('+COPS: 0,0,"Viettel",7')
        if c == "AT+CNACT?":
            return self.ok('+CNACT: 0,%%d,"10.0.0.9"' %% self.pdp)
        if c == "AT+CNACT=0,1":
            if not self.cover:
                return self.say("\r\nERROR\r\n")
            self.pdp = True
            self.ok()
            return self.say("\r\n+APP PDP: 0,ACTIVE\r\n")
        if c == "AT+CNACT=0,0":
            self.pdp = self.mqtt = False
            return self.ok()
        if c == "AT+SMCONN":
            if not self.pdp:
                return self.say("\r\nERROR\r\n")
            self.mqtt = True
            return self.ok()
        if c == "AT+SMDISC":
            if not self.mqtt:
                return self.say("\r\nERROR\r\n")
            self.mqtt = False
            return self.ok()
        if c == "AT+SMSTATE?":
            return self.ok("+SMSTATE: %%d" %% self.mqtt)
        if c.startswith("AT+SMSUB="):
            if not self.mqtt:
                return self.say("\r\nERROR\r\n")
            self.subs.append(c.split('"')[1])
            return self.ok()
        if c.startswith("AT+SMPUB="):
            if not self.mqtt:
                return self.say("\r\nERROR\r\n")
            f = c.split('"')
            self.pending = (f[1], int(f[2].split(",")[1]))
            return self.say("\r\n> ")
        if c == "AT+CPOWD=1":
            self.say("\r\nNORMAL POWER DOWN\r\n")
            self.on = False
            return
        return self.ok()  # AT, AT+CMEE, AT+CEREG=2, AT+CFUN, AT+CPSMS, AT+SMCONF, AT+CGDCONT...

M = Modem()
CELL = {"apn": "v-internet", "reg_timeout_ms": 3000, "reg_poll_ms": 20, "backoff_ms": 20,
        "backoff_max_ms": 100, "boot_ms": 500}
MSGS = []
def mk(**kw):
    c = dict(CELL)
    c.update(kw)
    cl = cellcfg.client("dev-1", "broker", 1883, 30, "sen/v1/s/dev-1/status", b'{"state":"offline"}', log,
                        io=M, c=c)
    cl.subs = ["sen/v1/s/dev-1/ack", "sen/v1/s/dev-1/cmd"]
    cl.on_message = lambda t, m, r: MSGS.append([t, m.decode()])
    return cl
async def until(cond, ms=5000):
    t = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t) > ms:
            raise AssertionError("timeout")
        await asyncio.sleep_ms(10)
def out(x): print(json.dumps(x))
"""


def _mp(micropython_bin: str, repo_root: Path, body: str) -> tuple[list[Any], list[str]]:
    code = PRELUDE % str(repo_root / "firmware" / "lib") + body
    done = subprocess.run([micropython_bin, "-X", "heapsize=128K", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return [r for r in rows if not (isinstance(r, list) and r[:1] == ["log"])], \
        [r[1] for r in rows if isinstance(r, list) and r[:1] == ["log"]]


def test_cold_start_publish_and_messages(micropython_bin: str, repo_root: Path) -> None:
    out, log = _mp(micropython_bin, repo_root, """
async def main():
    cl = mk()
    task = asyncio.create_task(cl.run())
    await cl.wait_connected()
    await cl.wait_ack(await cl.publish("sen/v1/s/dev-1/telemetry", memoryview(b'{"v":1,"seq":1}'), 1, False))
    M.deliver("sen/v1/s/dev-1/ack", '{"fid":7,"boot":1,"seq":1}')
    await until(lambda: MSGS)
    d = {}
    cl.diag(d)
    await cl.disconnect()
    task.cancel()
    out([M.pubs, MSGS, d, cl.rungs, M.pulses, cl.connects])
    out([c for c in M.cmds if not c.startswith("AT+SMCONF")])
asyncio.run(main())
""")
    pubs, msgs, d, rungs, pulses, connects = out[0]
    assert pubs == [["sen/v1/s/dev-1/telemetry", '{"v":1,"seq":1}']]
    assert msgs == [["sen/v1/s/dev-1/ack", '{"fid":7,"boot":1,"seq":1}']]
    assert d["rssi_dbm"] == -73 and d["cell_op"] == "Viettel" and d["cell_id"] == "01A2B3C4"
    assert d["cell_reg"] == 1 and d["cell_rungs"] == "0/0/0/1" and d["cell_tx_b"] > 100
    assert rungs == [0, 0, 0, 1] and pulses == 1 and connects == 1
    cmds = out[1]
    # the state machine's order: sync, echo off, SIM, power saving, registration, APN, PDP,
    # MQTT, subscriptions, the publish, and the power-down at the end
    order = ["AT", "ATE0", "AT+CMEE=1", "AT+CEREG=2", "AT+CPIN?", "AT+CPSMS=0", "AT+CEREG?",
             'AT+CGDCONT=1,"IP","v-internet"', 'AT+CNCFG=0,1,"v-internet"', "AT+CNACT=0,1",
             "AT+SMCONN", 'AT+SMSUB="sen/v1/s/dev-1/ack",1', 'AT+SMSUB="sen/v1/s/dev-1/cmd",1',
             'AT+SMPUB="sen/v1/s/dev-1/telemetry",15,1,0']
    pos = [cmds.index(c) for c in order]
    assert pos == sorted(pos), cmds
    assert cmds[-2:] == ["AT+SMDISC", "AT+CPOWD=1"]
    assert any("cell: mqtt up" in line for line in log)


def test_recovery_ladder(micropython_bin: str, repo_root: Path) -> None:
    """MQTT drop -> rung mqtt; PDP drop -> rung pdp; the modem restarting (RDY) -> rung
    cfun; a silent modem -> climbs to a power cycle. Publishes queued meanwhile go once each,
    in order."""
    out, log = _mp(micropython_bin, repo_root, """
async def main():
    cl = mk()
    task = asyncio.create_task(cl.run())
    n = 0
    async def pub():
        nonlocal n
        n += 1
        return await cl.publish("t/telemetry", b"m%d" % n, 1, False)
    async def fault(f):
        await cl.wait_connected()
        await cl.wait_ack(await pub())
        c0 = cl.connects
        f()
        p = await pub()  # queued as the link falls (the scripted modem answers at once, so
        # the whole reconnect may happen between two looks at cl.connected: count connects)
        await until(lambda: cl.connects > c0, 20000)
        await cl.wait_ack(p)
    await fault(M.drop_mqtt)
    out(list(cl.rungs))
    await fault(M.drop_pdp)
    out(list(cl.rungs))
    await fault(M.reset)
    out(list(cl.rungs))
    def silent():  # the modem hangs (until a PWRKEY pulse) and the session is gone
        M.silent = True
        cl._lost = 0
    await fault(silent)
    out(list(cl.rungs))
    out([M.pubs, M.pulses])
    task.cancel()
asyncio.run(main())
""")
    assert out[0] == [1, 0, 0, 1]
    assert out[1][:2] == [1, 1] and out[1][2:] == [0, 1]
    assert out[2][2] == 1
    assert out[3][3] >= 2, log  # the silent modem was power-cycled
    pubs, pulses = out[4]
    assert [m for _, m in pubs] == [f"m{i}" for i in range(1, 9)]
    assert pulses >= 2
    assert any("down to rung mqtt" in line for line in log)
    assert any("down to rung pdp" in line for line in log)
    assert any("down to rung cfun" in line for line in log)


def test_tls_is_refused_not_sent_in_plain_text(micropython_bin: str, repo_root: Path) -> None:
    out, log = _mp(micropython_bin, repo_root, """
async def main():
    cl = mk()
    cl.tls = True
    task = asyncio.create_task(cl.run())
    await until(lambda: [x for x in LOG if "next rung" in x], 10000)
    out([cl.connected, [c for c in M.cmds if c.startswith("AT+SM")]])
    task.cancel()
asyncio.run(main())
""")
    assert out[0] == [False, []]
    assert any("broker.tls: not supported" in line for line in log), log


@pytest.mark.parametrize("fault, why", [
    ("M.sim = False", "SIM not ready (+CME ERROR: 10)"),
    ("M.cover = False", "no coverage?"),
    ("M.deny = True", "registration denied"),
])
def test_no_network_at_boot_says_why_then_connects(micropython_bin: str, repo_root: Path,
                                                   fault: str, why: str) -> None:
    out, log = _mp(micropython_bin, repo_root, """
async def main():
    FAULT
    cl = mk(reg_timeout_ms=300)
    task = asyncio.create_task(cl.run())
    await until(lambda: [x for x in LOG if "next rung" in x], 10000)
    out(cl.connected)
    M.sim, M.cover, M.deny = True, True, False
    await until(lambda: cl.connected, 20000)
    await cl.wait_ack(await cl.publish("t/telemetry", b"x", 1, False))
    out([cl.connected, M.pubs])
    task.cancel()
asyncio.run(main())
""".replace("FAULT", fault))
    assert out[0] is False
    assert out[1] == [True, [["t/telemetry", "x"]]]
    assert any(why in line for line in log), log


# A scripted A76xx (A7670/A7680): the same Modem, with the CMQTT command set; topics and
# payloads in data mode after "> ", results as URCs after the OK.
A76 = r"""
class A76(Modem):
    def boot(self):
        Modem.boot(self)
        self.data = None  # (what, length) while data mode waits for its bytes
        self.topic = self.payload = None
        self.started = False
    def write(self, b):
        if not self.on:
            return
        if self.data:
            self.w += b.encode() if isinstance(b, str) else bytes(b)
            what, n = self.data
            if len(self.w) >= n:
                d, self.w = self.w[:n].decode(), self.w[n:]
                self.data = None
                if what == "topic":
                    self.topic = d
                elif what == "payload":
                    self.payload = d
                elif what == "sub":
                    self.subs.append(d)
                    self.ok()
                    return self.say("\r\n+CMQTTSUB: 0,0\r\n")
                self.ok()
            return
        Modem.write(self, b)
    def prompt(self, what, c):
        self.data = (what, int(c.split(",")[1]))
        self.say("\r\n>")
    def answer(self, c):
        if c.startswith("AT+CGACT=1"):
            if not self.cover:
                return self.say("\r\nERROR\r\n")
            self.pdp = True
            return self.ok()
        if c == "AT+CMQTTSTART":
            self.started = True
            self.ok()
            return self.say("\r\n+CMQTTSTART: 0\r\n")
        if c in ("AT+CMQTTSTOP", "AT+CMQTTREL=0") or c.startswith("AT+CMQTTDISC"):
            was = self.mqtt
            self.mqtt = False
            return self.ok() if was or c != "AT+CMQTTDISC=0,60" else self.say("\r\n+CME ERROR: 11\r\n")
        if c.startswith("AT+CMQTTWILLTOPIC") or c.startswith("AT+CMQTTTOPIC"):
            return self.prompt("topic", c)
        if c.startswith("AT+CMQTTWILLMSG") or c.startswith("AT+CMQTTPAYLOAD"):
            return self.prompt("payload", c)
        if c.startswith("AT+CMQTTSUB="):
            return self.prompt("sub", c)
        if c.startswith("AT+CMQTTCONNECT="):
            self.ok()
            self.mqtt = self.pdp and self.started
            return self.say("\r\n+CMQTTCONNECT: 0,%d\r\n" % (0 if self.mqtt else 11))
        if c == "AT+CMQTTCONNECT?":
            return self.ok('+CMQTTCONNECT: 0,"tcp://broker:1883",30,1' if self.mqtt else "+CMQTTCONNECT: 0")
        if c.startswith("AT+CMQTTPUB="):
            if not self.mqtt:
                return self.say("\r\nERROR\r\n")
            self.pubs.append((self.topic, self.payload))
            self.ok()
            return self.say("\r\n+CMQTTPUB: 0,0\r\n")
        return Modem.answer(self, c)
    def drop_mqtt(self):
        self.mqtt = False
        self.say("\r\n+CMQTTCONNLOST: 0,1\r\n")
    def deliver(self, topic, msg):
        if self.mqtt and topic in self.subs:
            self.say("\r\n+CMQTTRXSTART: 0,%d,%d\r\n+CMQTTRXTOPIC: 0,%d\r\n%s\r\n+CMQTTRXPAYLOAD: 0,%d\r\n%s\r\n"
                     "+CMQTTRXEND: 0\r\n" % (len(topic), len(msg), len(topic), topic, len(msg), msg))
    def reset(self):
        self.boot()
        self.say("\r\n*ATREADY: 1\r\n")
M = A76()
"""


def test_a76xx_cold_start_publish_messages_and_an_mqtt_drop(micropython_bin: str, repo_root: Path) -> None:
    out, log = _mp(micropython_bin, repo_root, A76 + """
async def main():
    cl = mk(modem="a76xx")
    task = asyncio.create_task(cl.run())
    await cl.wait_connected()
    await cl.wait_ack(await cl.publish("sen/v1/s/dev-1/telemetry", memoryview(b'{"v":1,"seq":1}'), 1, False))
    M.deliver("sen/v1/s/dev-1/ack", '{"fid":7,"boot":1,"seq":1}')
    await until(lambda: MSGS)
    c0 = cl.connects
    M.drop_mqtt()
    p = await cl.publish("sen/v1/s/dev-1/telemetry", b'{"v":1,"seq":2}', 1, False)
    await until(lambda: cl.connects > c0, 10000)
    await cl.wait_ack(p)
    c0 = cl.connects
    M.reset()
    await until(lambda: cl.connects > c0, 10000)
    out([M.pubs, MSGS, cl.rungs, M.subs])
    task.cancel()
asyncio.run(main())
""")
    pubs, msgs, rungs, subs = out[0]
    assert [p[1] for p in pubs] == ['{"v":1,"seq":1}', '{"v":1,"seq":2}']
    assert pubs[0][0] == "sen/v1/s/dev-1/telemetry"
    assert msgs == [["sen/v1/s/dev-1/ack", '{"fid":7,"boot":1,"seq":1}']]
    assert rungs[0] == 1 and rungs[2] == 1, log  # the drop: rung mqtt; *ATREADY: rung cfun
    assert subs[:2] == ["sen/v1/s/dev-1/ack", "sen/v1/s/dev-1/cmd"]
    assert any("+CMQTTCONNLOST: 0,1: down to rung mqtt" in line for line in log), log


def test_ppp_dial_against_the_simulated_modem(micropython_bin: str, repo_root: Path) -> None:
    """cell.mode "ppp" (firmware/lib/ppp.py) on the VM's modem wires (modem_tcp: a socket) to the
    host's simulated SIM7080G: power-on, registration, AT+CGDCONT, ATD*99# -> CONNECT, then
    the hand-over, which the unix port's HAL refuses (no network.PPP); the next try escapes
    from data mode ("+++", ATH) and dials again. The PPP link itself runs only on a board."""
    from hardware.modem_sim7080 import Sim7080

    modem = Sim7080(reg_s=0.3, boot_s=0.2, pdp_s=0.1, name="ppp").start()
    code = """
import sys, json
sys.path.insert(1, LIB)
import asyncio, cellcfg
def log(m):
    print(json.dumps(["log", m]))
CELL = {"apn": "v-internet", "mode": "ppp", "sim_port": PORT, "reg_timeout_ms": 5000, "reg_poll_ms": 100,
        "backoff_ms": 100, "backoff_max_ms": 500, "boot_ms": 3000}
async def main():
    cl = cellcfg.client("dev-1", "broker", 1883, 30, "t/status", b"{}", log, c=CELL)
    cl.net_connect = None  # what the app sets (WiFi's): not used over PPP
    a = await cl._link()
    b = await cl._link()
    d = {}
    cl.diag(d)
    print(json.dumps([a, b, cl.dials, d["cell_reg"], d["rssi_dbm"]]))
asyncio.run(main())
""".replace("LIB", repr(str(repo_root / "firmware" / "lib"))).replace("PORT", str(modem.port))
    try:
        done = subprocess.run([micropython_bin, "-X", "heapsize=128K", "-c", code], capture_output=True,
                              text=True, timeout=60)
        commands, data_mode = list(modem.commands), modem.data_mode
    finally:
        modem.close()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    log = [r[1] for r in rows if r[:1] == ["log"]]
    assert [r for r in rows if r[:1] != ["log"]] == [[False, False, 2, 1, -77]]
    assert log.count("cell: ppp: CONNECT, but this port has no network.PPP") == 2, log
    dial = ['AT+CGDCONT=1,"IP","v-internet"', "ATD*99#"]
    i = commands.index(dial[0])
    assert commands[i:i + 2] == dial, commands
    # the second try: back to command mode ("+++" is no command line: the modem dropped it
    # with the data), hung up, dialled again
    assert commands[i + 2] == "ATH" and commands.count("ATD*99#") == 2 and data_mode, commands


def test_cell_settings_presets_defaults_and_errors(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    """config.json's "cell" (firmware/lib/cellcfg.py): an APN preset fills apn/user/password
    (an explicit apn wins), defaults fill the timings, and every bad value is refused with
    the file and the key named."""
    cases = {
        "preset": {"apn_preset": "vinaphone"},
        "own_apn": {"apn_preset": "viettel", "apn": "iot.example"},
        "no_cell": None,
        "bad_preset": {"apn_preset": "nope"},
        "no_apn": {"reg_poll_ms": 100},
        "bad_modem": {"apn": "x", "modem": "bg95"},
        "bad_mode": {"apn": "x", "mode": "slip"},
        "bad_timing": {"apn": "x", "backoff_ms": 0},
        "bool_timing": {"apn": "x", "boot_ms": True},
    }
    for name, cell in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"cell": cell} if cell is not None else {}))
    code = """
import sys, json
sys.path.insert(1, LIB)
import cellcfg
for name in NAMES:
    try:
        c = cellcfg.settings(DIR + "/" + name + ".json")
        print(json.dumps([name, "ok", c]))
    except cellcfg.CellError as e:
        print(json.dumps([name, "error", str(e)]))
""".replace("LIB", repr(str(repo_root / "firmware" / "lib"))).replace("NAMES", repr(list(cases))) \
        .replace("DIR", repr(str(tmp_path)))
    done = subprocess.run([micropython_bin, "-X", "heapsize=128K", "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    got = {r[0]: r[1:] for r in (json.loads(line) for line in done.stdout.splitlines())}
    ok = got["preset"][1]
    assert got["preset"][0] == "ok" and (ok["apn"], ok["user"], ok["password"]) == ("m3-world", "mms", "mms")
    assert (ok["reg_timeout_ms"], ok["reg_poll_ms"], ok["backoff_ms"], ok["backoff_max_ms"], ok["boot_ms"]) == \
        (180000, 2000, 2000, 60000, 15000)
    assert got["own_apn"][0] == "ok" and got["own_apn"][1]["apn"] == "iot.example"
    errors = {name: r[1] for name, r in got.items() if r[0] == "error"}
    assert set(errors) == set(cases) - {"preset", "own_apn"}, got
    assert "no_cell.json: key 'cell' must be an object" in errors["no_cell"]
    bad = errors["bad_preset"]  # the presets in the VM's dict order
    assert "key 'cell.apn_preset' must be one of" in bad and "(got 'nope')" in bad, bad
    assert all(p in bad for p in ("viettel", "vinaphone", "mobifone")), bad
    assert "key 'cell.apn' is missing" in errors["no_apn"]
    assert "key 'cell.modem' must be sim7080 or a76xx" in errors["bad_modem"]
    assert "key 'cell.mode' must be mqtt" in errors["bad_mode"]
    assert "key 'cell.backoff_ms' must be a positive integer" in errors["bad_timing"]
    assert "key 'cell.boot_ms' must be a positive integer" in errors["bool_timing"]
