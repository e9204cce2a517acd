# Sen firmware: the AT command engine for a UART modem (loaded only by the cellular
# transport). One task owns it: cmd() writes a command and collects its response up to the
# final result (OK, ERROR, +CME ERROR: n, +CMS ERROR: n; CONNECT / NO CARRIER after a dial,
# ppp.py) or its deadline; every line that starts with one of `urcs` (unsolicited result
# codes: +SMSUB:, +SMSTATE:, +CEREG:, RDY...) goes to on_urc as it comes, even in the middle
# of a response, unless it starts with a read command's own prefix (AT+CEREG? answers
# "+CEREG: 0,1", which is then the response). Lines from the modem while no command waits go
# to on_urc too. The echo of the command (ATE1,
# the default after power-on) is dropped. Bytes are gathered in one fixed buffer, so a line
# split across reads is put together; a line longer than the buffer is cut (counted).
# The UART: readinto(buf) -> the bytes read into buf, 0 or None when none (non-blocking),
# write(bytes or str); machine.UART with timeout=0 on ESP32 (modem_io.py), a socket to the
# simulated modem (modem_tcp.py) or a scripted object on the unix port.
# A final result that comes after its deadline reaches on_urc (no command waits) or, if a
# new command was written already, is taken for that one's: after a timeout the state
# machine syncs with plain "AT" before trusting the modem again (cellular.py).
import time

import asyncio
from micropython import const

try:
    from typing import Any  # for the type checker: MicroPython has no typing module
except ImportError:
    pass

_BUF = const(640)  # one line: +SMSUB with a cmd or ack message fits
_RX = const(64)  # one read from the UART (a longer burst: read again at once)
_STEP_MS = const(10)
_PROMPT_MS = const(5000)

OK = "OK"
TIMEOUT = ""


class AT:
    def __init__(self, uart):
        self.u = uart
        self.urcs = ()  # type: tuple  # prefixes (str) of the unsolicited lines
        self.on_urc = None  # type: Any  # callable(line str): set by the owner before the first read
        self._b = bytearray(_BUF)
        self._bv = memoryview(self._b)
        self._r = bytearray(_RX)
        self._rv = memoryview(self._r)
        self._n = 0  # bytes of a line begun in _b (more than _BUF: it is being cut)
        self._c = None  # the command in flight (str, without "\r")
        self._p = None  # its prefix ("+CEREG:" for "AT+CEREG?")
        self._fin = None  # its final result, once read
        self._prompt = False
        self.resp = []  # the info lines of the last command
        self.fin = TIMEOUT  # and its final result
        self.raw = 0  # this many next lines go to on_urc whatever they are
        self.abort = False  # set (by a URC handler): a waiting command gives up now
        self.tx = self.rx = self.cut = self.timeouts = 0

    # Reads what the UART holds; complete lines are handled (one function, the hot path: each
    # line is taken where it ends). True if anything came.
    def pump(self):
        r = self._r
        n = self.u.readinto(r)  # into the one read buffer: no allocation per read
        if not n:
            return False
        self.rx += n
        b = self._b
        i = 0
        while i < n:
            j = r.find(b"\n", i, n)
            end = n if j < 0 else j
            k = min(end - i, _BUF - self._n) if self._n < _BUF else 0
            b[self._n:self._n + k] = self._rv[i:i + k]
            self._n += end - i  # past _BUF: the line is cut (counted once, below)
            if j < 0:
                break
            i = j + 1
            # a line in _b[:m] (its "\n" not in it)
            m = self._n
            self._n = 0
            if m > _BUF:
                self.cut += 1
                m = _BUF
            while m and b[m - 1] == 13:
                m -= 1
            h = 0
            while h < m and b[h] == 13:  # "\r\r\n" and friends
                h += 1
            if h == m:
                continue
            try:
                line = str(self._bv[h:m], "utf-8")  # one copy: the line itself
            except UnicodeError:
                self.cut += 1  # garbled
                continue
            c = self._c
            if self.raw:  # a raw line a URC announced (A76xx: a message's topic, its payload)
                self.raw -= 1
            elif c is not None:
                if line == c:
                    continue  # the echo
                u = None
                if self._p is None or not line.startswith(self._p):
                    for u in self.urcs:
                        if line.startswith(u):
                            break
                    else:
                        u = None
                if u is None:
                    if line == "OK" or line == "ERROR" or line.startswith("+CME ERROR") or \
                            line.startswith("+CMS ERROR") or line.startswith("CONNECT") or line == "NO CARRIER":
                        self._fin = line
                    else:
                        self.resp.append(line)
                    continue
            self.on_urc(line)
        # the data prompt ("> ", no line end) of AT+SMPUB / AT+CMQTTTOPIC...
        if self._c is not None and self._n and b[0] == 62 and (self._n == 1 or b[1] == 32):
            self._prompt = True
            self._n = 0
        return True

    # Lines read, while no command waits: URCs are dispatched
    def poll(self):
        while self.pump():
            pass

    def write(self, b):  # bytes or str
        self.tx += len(b)
        self.u.write(b)

    # Sends command c and waits ms for its final result: "OK", "ERROR", "+CME ERROR: n",
    # "CONNECT 150000000" (the line) or TIMEOUT (""); the info lines are in resp. data:
    # written after the "> " prompt (AT+SMPUB), which must come within _PROMPT_MS.
    async def cmd(self, c, ms=1000, data=None):
        self.poll()
        self._n = 0  # a half line left by noise is not the start of the answer
        self.resp = []
        self._fin = None
        self._prompt = False
        self._c = c
        # a read command's own prefix is its answer, even where that prefix is also a URC's
        # (AT+CEREG? -> +CEREG: 0,1); a set command's is not: a message that comes during
        # AT+SMSUB="t",1 (a retained ack, at once) is a URC, never swallowed as a response
        i = c.find("?")
        self._p = c[2:i] + ":" if c.startswith("AT+") and i > 2 else None
        self.write(c)  # a str is a buffer: no copy of the command
        self.write(b"\r")
        t = time.ticks_ms()
        try:
            if data is not None:
                while not self._prompt and self._fin is None:
                    if self.abort or time.ticks_diff(time.ticks_ms(), t) > min(ms, _PROMPT_MS):
                        self.timeouts += 1
                        return TIMEOUT
                    if not self.pump():
                        await asyncio.sleep_ms(_STEP_MS)
                if self._fin is not None:
                    return self._fin
                self.write(data)
            while self._fin is None:
                if self.abort or time.ticks_diff(time.ticks_ms(), t) > ms:
                    self.timeouts += 1
                    return TIMEOUT
                if not self.pump():
                    await asyncio.sleep_ms(_STEP_MS)
            return self._fin
        finally:
            self._c = self._p = None
            self.fin = self._fin or TIMEOUT

    # The value after "PREFIX: " of the first info line of command c with that prefix, or
    # None (also when the command failed): await q("AT+CSQ", "+CSQ") -> "17,99"
    async def q(self, c, prefix, ms=1000):
        if await self.cmd(c, ms) != OK:
            return None
        for line in self.resp:
            if line.startswith(prefix + ":"):
                return line[len(prefix) + 1:].strip()
        return None
