# Sen firmware: the serial transport (tests/contract/serial/README.md). Frames go out on
# the console as "SEN1 <json> <crc32 8 hex>\n"; gateway frames (ack, cmd) come back as
# lines on stdin. Same interface as MQTTClient, so the app does not care which it has:
# a frame counts as handed over once written (the end-to-end ack does the rest).
import binascii
import json
import sys

import asyncio
from micropython import const

_LINE_MAX = const(4160)


def frame(js):
    return b"SEN1 " + js + (" %08x\n" % (binascii.crc32(js) & 0xFFFFFFFF)).encode()


# -> the JSON bytes of a good frame, or None (noise, bad frame, bad CRC)
def unframe(line):
    line = line.rstrip(b"\r\n")
    if not line.startswith(b"SEN1 ") or len(line) > _LINE_MAX:
        return None
    i = line.rfind(b" ")
    js, crc = line[5:i], line[i + 1:]
    if i < 5 or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != binascii.crc32(js) & 0xFFFFFFFF:
            return None
    except ValueError:
        return None
    return js


class SerialLink:
    def __init__(self, log):
        self._log = log
        self.connected = True
        self.connects = 1
        self.on_connect = None
        self.on_message = None  # callable(kind, json bytes, retained)
        self.bad = 0
        self._out = getattr(sys.stdout, "buffer", sys.stdout)

    async def run(self):
        if self.on_connect is not None:
            await self.on_connect()
        try:
            r = asyncio.StreamReader(sys.stdin)
        except (AttributeError, OSError, TypeError):
            return  # a console we cannot poll: no acks, readings stay in the outbox
        while True:
            line = await r.readline()
            if not line:
                return  # stdin closed
            js = unframe(line)
            if js is None:
                if line.startswith(b"SEN1 "):
                    self.bad += 1
                continue
            try:
                kind = json.loads(js).get("kind")
            except (ValueError, AttributeError):
                self.bad += 1
                continue
            if kind in ("ack", "cmd") and self.on_message is not None:
                self.on_message(kind, js, False)

    # topic is ignored: the JSON says what it is. msg: bytes or memoryview
    # The frame goes out in three writes with no await between them (nothing else can write
    # in between), so the envelope is never copied.
    async def publish(self, topic, msg, qos=1, retain=False):
        o = self._out
        o.write(b"SEN1 ")
        o.write(msg)
        o.write(" %08x\n" % (binascii.crc32(msg) & 0xFFFFFFFF))
        return 0

    async def wait_ack(self, pid):
        pass

    async def wait_connected(self):
        pass

    async def wait_idle(self):
        pass

    async def disconnect(self):
        pass
