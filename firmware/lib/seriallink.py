# Sen firmware: the serial transport (tests/contract/serial/README.md). Frames go out on
# the console as "SEN1 <json> <crc32 8 hex>\n"; gateway frames (ack, cmd, ota) come back as
# lines on stdin: an ota frame's "b64", decoded, is one ota message, handed to the app as the
# MQTT client hands one (DESIGN.md, OTA). Same interface as MQTTClient, so the app does not
# care which it has: a frame counts as handed over once written (the end-to-end ack does the rest).
import binascii
import json
import select
import sys

import asyncio
from micropython import const

_LINE_MAX = const(4160)
_STEP_MS = const(10)


class SerialLink:
    connected = True
    connects = 1

    def __init__(self, log):
        self.on_connect = None
        self.on_message = None  # callable(kind, json bytes, retained)
        self._out = getattr(sys.stdout, "buffer", sys.stdout)

    async def run(self):
        if self.on_connect is not None:
            await self.on_connect()
        # stdin is polled every _STEP_MS: asyncio's stream module stays out of RAM
        p = select.poll()
        try:
            p.register(sys.stdin, select.POLLIN)
        except (OSError, TypeError):
            return  # a console we cannot poll: no acks, readings stay in the outbox
        while True:
            if not p.poll(0):
                await asyncio.sleep_ms(_STEP_MS)
                continue
            try:
                line = sys.stdin.readline()  # like asyncio's: waits for the rest of a line begun
                if not line:
                    return  # stdin closed
                line = line.rstrip("\r\n")
                i = line.rfind(" ")
                js = line[5:i].encode()
                if not line.startswith("SEN1 ") or len(line) > _LINE_MAX or len(line) - i != 9:
                    continue  # noise: boot banners, REPL echo, half lines
                if int(line[i + 1:], 16) == binascii.crc32(js):
                    j = json.loads(js)
                    kind = j.get("kind")
                    if kind == "ack" or kind == "cmd":
                        self.on_message(kind, js, False)  # type: ignore[misc]  # set by the app
                    elif kind == "ota":
                        line = js = None  # the chunk's bytes only, while ota.py takes them
                        self.on_message(kind, binascii.a2b_base64(j.pop("b64")), False)  # type: ignore[misc]
                    j = None
                else:  # a bad CRC: the app counts it (bad_cmd) and logs it
                    self.on_message("frame", b"bad crc", False)  # type: ignore[misc]
            except (ValueError, AttributeError, KeyError):  # not hex, JSON, UTF-8 or base64: skipped
                pass

    # topic is ignored: the JSON says what it is. msg: bytes or memoryview
    # The frame goes out in three writes with no await between them (nothing else can write
    # in between), so the envelope is never copied.
    async def publish(self, topic, msg, qos=1, retain=False):
        o = self._out
        o.write("SEN1 ")
        o.write(msg)
        o.write(" %08x\n" % binascii.crc32(msg))
        return 0

    # a frame is handed over once written: nothing to wait for
    async def wait_ack(self, pid=0):
        pass

    wait_connected = wait_idle = disconnect = wait_ack
