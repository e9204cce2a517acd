"""The AT command engine (firmware/lib/at.py) on the real MicroPython VM, against recorded
transcripts played by a scripted UART: echo on, URCs interleaved with a response (and one
split across reads), ERROR and +CME ERROR: n, a response split byte by byte, a missing final
OK (a timeout, with the lines kept), the data prompt of AT+SMPUB, garbage and an overlong
line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.firmware

# A scripted UART: each command written (up to "\r") is answered by its chunks, one chunk
# per readinto(); feed() queues unsolicited bytes. Every command written is kept in `sent`.
PRELUDE = """
import sys, json
sys.path.insert(1, %r)
import asyncio
from at import AT
class U:
    def __init__(self, script):
        self.script = list(script)  # [(command, [chunks])]
        self.q = []
        self.w = b""
        self.sent = []
    def feed(self, *chunks):
        self.q.extend(chunks)
    def readinto(self, b):  # a chunk longer than b comes in two reads
        if not self.q:
            return None
        d = self.q.pop(0)
        if len(d) > len(b):
            self.q.insert(0, d[len(b):])
            d = d[:len(b)]
        b[:len(d)] = d
        return len(d)
    def write(self, b):  # bytes, or a str (the engine writes a command as it is)
        self.w += b.encode() if isinstance(b, str) else b
        if self.script and self.script[0][0] is None:  # data after a prompt
            self.sent.append(self.w.decode()); self.w = b""
            self.q.extend(self.script.pop(0)[1])
            return
        while b"\\r" in self.w:
            i = self.w.find(b"\\r")
            c = self.w[:i].decode(); self.w = self.w[i + 1:]
            self.sent.append(c)
            if self.script and self.script[0][0] == c:
                self.q.extend(self.script.pop(0)[1])
URCS = []
def mk(script, urcs=("+SMSUB:", "+SMSTATE:", "+CEREG:", "RDY", "+APP PDP:")):
    u = U(script)
    a = AT(u)
    a.urcs = urcs
    a.on_urc = URCS.append
    return u, a
def out(x): print(json.dumps(x))
"""


def _mp(micropython_bin: str, repo_root: Path, body: str) -> list[Any]:
    code = PRELUDE % str(repo_root / "firmware" / "lib") + body
    done = subprocess.run([micropython_bin, "-X", "heapsize=128K", "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_echo_on_and_info_lines(micropython_bin: str, repo_root: Path) -> None:
    r = _mp(micropython_bin, repo_root, """
async def main():
    u, a = mk([("AT+CSQ", [b"AT+CSQ\\r\\r\\n", b"+CSQ: 17,99\\r\\n\\r\\nOK\\r\\n"]),
               ("ATE0", [b"ATE0\\r\\r\\nOK\\r\\n"]),
               ("AT+CPIN?", [b"\\r\\n+CPIN: READY\\r\\n\\r\\nOK\\r\\n"])])
    out([await a.cmd("AT+CSQ"), a.resp])
    out([await a.cmd("ATE0"), a.resp])
    out(await a.q("AT+CPIN?", "+CPIN"))
    out([URCS, a.timeouts, a.tx, a.rx > 40])
asyncio.run(main())
""")
    assert r[0] == ["OK", ["+CSQ: 17,99"]]
    assert r[1] == ["OK", []]
    assert r[2] == "READY"
    assert r[3] == [[], 0, len("AT+CSQ\rATE0\rAT+CPIN?\r"), True]


def test_urcs_interleaved_with_a_response(micropython_bin: str, repo_root: Path) -> None:
    """A +SMSUB (an ack arriving) and a +SMSTATE in the middle of AT+CEREG?'s answer go to
    on_urc, not into the response; the command's own prefix stays the response."""
    r = _mp(micropython_bin, repo_root, """
async def main():
    ack = b'+SMSUB: "sen/v1/s/d/ack","{\\\\"boot\\\\":1,\\\\"seq\\\\":5}"\\r\\n'
    u, a = mk([("AT+CEREG?", [b"\\r\\n+CEREG: 0,5\\r\\n", ack[:20], ack[20:] + b"+SMSTATE: 0\\r\\n",
                               b"\\r\\nOK\\r\\n"])])
    out(await a.q("AT+CEREG?", "+CEREG"))
    out(a.resp)
    out(URCS)
    u.feed(b"\\r\\nRDY\\r\\n\\r\\n+CEREG: 2\\r\\n")
    a.poll()
    out(URCS[2:])
asyncio.run(main())
""")
    assert r[0] == "0,5"
    assert r[1] == ["+CEREG: 0,5"]
    assert r[2] == ['+SMSUB: "sen/v1/s/d/ack","{\\"boot\\":1,\\"seq\\":5}"', "+SMSTATE: 0"]
    assert r[3] == ["RDY", "+CEREG: 2"]


def test_a_message_during_a_subscribe_is_a_urc(micropython_bin: str, repo_root: Path) -> None:
    """A retained ack the broker sends at once, while the next AT+SMSUB is still in flight,
    goes to on_urc: a set command's own prefix (+SMSUB) is not its response (only a read
    command's is). Swallowed, the ack was lost for good (the gateway publishes an ack once)."""
    r = _mp(micropython_bin, repo_root, """
async def main():
    ack = b'\\r\\n+SMSUB: "sen/v1/s/d/ack","{\\\\"seq\\\\":5}"\\r\\n'
    u, a = mk([('AT+SMSUB="sen/v1/s/d/cmd",1', [ack, b"\\r\\nOK\\r\\n"])])
    out(await a.cmd('AT+SMSUB="sen/v1/s/d/cmd",1'))
    out([a.resp, URCS])
asyncio.run(main())
""")
    assert r[0] == "OK"
    assert r[1] == [[], ['+SMSUB: "sen/v1/s/d/ack","{\\"seq\\":5}"']]


def test_error_and_cme_error(micropython_bin: str, repo_root: Path) -> None:
    r = _mp(micropython_bin, repo_root, """
async def main():
    u, a = mk([("AT+SMCONN", [b"\\r\\nERROR\\r\\n"]),
               ("AT+CPIN?", [b"\\r\\n+CME ERROR: 10\\r\\n"]),
               ("AT+CMGS", [b"\\r\\n+CMS ERROR: 500\\r\\n"])])
    out(await a.cmd("AT+SMCONN", 2000))
    out(await a.cmd("AT+CPIN?"))
    out(await a.q("AT+CMGS", "+CMGS"))
asyncio.run(main())
""")
    assert r == ["ERROR", "+CME ERROR: 10", None]


def test_response_split_across_reads(micropython_bin: str, repo_root: Path) -> None:
    """Byte by byte, with the final OK's CR and LF in separate reads."""
    r = _mp(micropython_bin, repo_root, """
async def main():
    body = b'\\r\\n+COPS: 0,0,"Viettel",7\\r\\n\\r\\nOK\\r\\n'
    u, a = mk([("AT+COPS?", [body[i:i + 1] for i in range(len(body))])])
    out([await a.q("AT+COPS?", "+COPS"), a.resp])
asyncio.run(main())
""")
    assert r == [['0,0,"Viettel",7', ['+COPS: 0,0,"Viettel",7']]]


def test_missing_final_ok_is_a_timeout(micropython_bin: str, repo_root: Path) -> None:
    """No OK: cmd returns TIMEOUT ("") at its deadline with the lines it got; a late OK
    arriving while no command waits goes to on_urc, not to the next command."""
    r = _mp(micropython_bin, repo_root, """
import time
async def main():
    u, a = mk([("AT+CSQ", [b"\\r\\n+CSQ: 20,99\\r\\n"]), ("AT", [b"\\r\\nOK\\r\\n"])])
    t = time.ticks_ms()
    s = await a.cmd("AT+CSQ", 300)
    dt = time.ticks_diff(time.ticks_ms(), t)
    out([s, a.resp, a.timeouts, 250 <= dt < 1000])
    u.feed(b"\\r\\nOK\\r\\n")
    a.poll()
    out([await a.cmd("AT"), URCS])
asyncio.run(main())
""")
    assert r[0] == ["", ["+CSQ: 20,99"], 1, True]
    assert r[1] == ["OK", ["OK"]]


def test_data_prompt(micropython_bin: str, repo_root: Path) -> None:
    """AT+SMPUB: the payload goes only after "> "; an ERROR instead of the prompt ends it
    without writing the payload; no prompt at all is a timeout."""
    r = _mp(micropython_bin, repo_root, """
async def main():
    u, a = mk([('AT+SMPUB="t",5,1,0', [b"\\r\\n> "]), (None, [b"\\r\\nOK\\r\\n"]),
               ('AT+SMPUB="t",3,1,0', [b"\\r\\nERROR\\r\\n"]), ('AT+SMPUB="t",2,1,0', [])])
    out(await a.cmd('AT+SMPUB="t",5,1,0', 2000, b"hello"))
    out(await a.cmd('AT+SMPUB="t",3,1,0', 2000, b"abc"))
    out(await a.cmd('AT+SMPUB="t",2,1,0', 200, b"xy"))
    out(u.sent)
asyncio.run(main())
""")
    assert r[:3] == ["OK", "ERROR", ""]
    assert r[3] == ['AT+SMPUB="t",5,1,0', "hello", 'AT+SMPUB="t",3,1,0', 'AT+SMPUB="t",2,1,0']


def test_garbage_and_overlong_lines(micropython_bin: str, repo_root: Path) -> None:
    """Invalid UTF-8 is dropped and counted; a line past the buffer is cut, counted, and
    the engine still finds the next response."""
    r = _mp(micropython_bin, repo_root, """
async def main():
    u, a = mk([("AT", [b"\\r\\n\\xff\\xfe\\x80\\r\\n", b"+X: " + b"a" * 1000 + b"\\r\\n", b"OK\\r\\n"])])
    out([await a.cmd("AT"), [len(x) for x in a.resp], a.cut])
asyncio.run(main())
""")
    assert r == [["OK", [640], 2]]
