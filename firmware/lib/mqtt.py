# Sen firmware: a small asyncio MQTT 3.1.1 client (our own; nothing copied).
# - CONNECT with clean session, keepalive, user/password and a retained QoS1 last will;
#   TLS: the broker's certificate is verified against `ca`, except with tls "insecure"
# - publish() only queues; QoS1 stays queued by packet id until its PUBACK and goes again
#   with DUP and the same id after a reconnect
# - run() is the one task that touches the socket: it connects (_connect; exponential
#   backoff with jitter), subscribes to `subs` after each CONNACK, sends the queue (_send),
#   pings, reads (_read: PUBACK, SUBACK, PINGRESP, PUBLISH -> on_message, PUBACK for QoS1;
#   the `big` topic's messages in pieces)
# Built for a small heap: one task, no asyncio streams, locks, events or wait_for (each
# loads an asyncio module): the socket is non-blocking and polled every _STEP_MS, and every
# wait has a deadline, so a stuck socket ends in a reconnect, never a hung board.
import asyncio
import errno
import random
import select
import socket
import struct
import time

from micropython import const

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_PINGREQ = const(0xC0)
_DUP = const(0x08)
_IO_TIMEOUT_MS = const(5000)
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(8000)
_RX_MAX = const(4096)
_PIECE = const(128)  # the buffer a `big` topic's message is read through
_STEP_MS = const(10)  # how often a waiting task looks at its condition


class MQTTClient:
    def __init__(self, client_id, host, port, keepalive, will_topic, will_msg, log):
        self.host, self.port = host, port
        self.keepalive = keepalive
        self._c = (client_id, will_topic, will_msg)
        self._log = log
        self.net_connect = None  # optional async callable -> bool (bring the link up)
        self.on_connect = None  # optional async callable, after each CONNACK and SUBSCRIBE
        self.on_message = None  # callable(topic, msg memoryview, retained, pos, left): _read
        self.subs = []  # topics subscribed (QoS1, one SUBSCRIBE) after each CONNACK
        self.big = None  # a topic whose messages come to on_message in pieces (_read)
        self.user, self.password = None, ""
        self.tls = False  # True (verified against ca), "insecure" (not verified) or False
        self.ca = None  # CA file on flash the broker's certificate must chain to
        # [packet id (0: QoS0), first header byte, topic, msg]; msg is not copied
        self._q = []  # type: list
        # the connection's state (the app reads connected and connects): set here, so the
        # object's attribute table has its full size from boot instead of growing at the
        # first connect, when the heap is fuller and in pieces
        self.connected = False
        self.connects = self._pid = self._nx = 0  # _nx: index in _q of the next entry to send
        self._s = None  # the socket while a connection is up
        self._rx = self._ping = time.ticks_ms()  # the last packet read, the last PINGREQ

    # Queues a publish (sent by run() when connected). Returns the packet id (0 for QoS0).
    async def publish(self, topic, msg, qos=1, retain=False):
        p = 0
        if qos:
            p = self._pid
            while True:  # the next packet id not in flight
                p = p % 65535 + 1
                for e in self._q:
                    if e[0] == p:
                        break
                else:
                    break
            self._pid = p
        self._q.append([p, _PUBLISH | qos << 1 | retain, topic, msg])
        return p

    # Until the PUBACK of pid; with no pid (wait_idle) until nothing is queued.
    async def wait_ack(self, pid=0):
        while True:
            for e in self._q:
                if not pid or e[0] == pid:
                    break
            else:
                return
            await asyncio.sleep_ms(_STEP_MS)

    wait_idle = wait_ack

    async def wait_connected(self):
        while not self.connected:
            await asyncio.sleep_ms(_STEP_MS)

    # DISCONNECT (the broker drops the will) and close; a run() that was connected returns.
    async def disconnect(self):
        s = self._s
        self._s = None
        if s:
            try:
                if self.connected:
                    s.write((0xE000).to_bytes(2, "big"))  # DISCONNECT
                s.close()
            except OSError:
                pass
        self.connected = False

    # Connection manager, a task for the life of the board: connects (backoff with jitter
    # between tries), then, while connected, sends the queue, keeps the link alive, reads.
    async def run(self):
        d = _BACKOFF_MIN_MS
        while True:
            try:
                s = await self._connect()
                d = _BACKOFF_MIN_MS
                b = bytearray(1)
                while self.connected:  # no coroutine made without work to do: less churn in the heap
                    if self._nx < len(self._q):
                        await self._send(s)
                    # a PINGREQ every keepalive/2; nothing read for a whole keepalive: the link is dead
                    t = time.ticks_ms()
                    if time.ticks_diff(t, self._rx) > self.keepalive * 1000:
                        raise OSError("no answer")
                    if time.ticks_diff(t, self._ping) > self.keepalive * 500:
                        self._ping = t
                        await self._io(s, _PINGREQ, "")
                    r = s.readinto(b)  # a packet begun: the rest of it; else a pause
                    await (asyncio.sleep_ms(_STEP_MS) if r is None else self._read(s, b))
                return  # disconnect() ended it
            except (OSError, ValueError, IndexError, MemoryError) as e:  # no room: as a lost link
                self.connected = False
                await self.disconnect()  # closes only: not connected, so no DISCONNECT
                # equal jitter: half fixed, half random, so a fleet does not reconnect in step
                w = d // 2 + random.getrandbits(16) % (d // 2 + 1)
                self._log("mqtt: error %r, down - retry in %d ms" % (e, w))
                await asyncio.sleep_ms(w)
                d = min(d * 2, _BACKOFF_MAX_MS)

    # One connection: the network, TCP (non-blocking, with a deadline), TLS, CONNECT and its
    # CONNACK, SUBSCRIBE, on_connect. Returns the socket; raises OSError on a failure.
    async def _connect(self):
        if self.net_connect and not await self.net_connect():
            raise OSError("no network")
        ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        s = self._s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:  # TCP_NODELAY: a header and its payload are two writes (no Nagle wait)
            s.setsockopt(6, 1, 1)
        except OSError:
            pass
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        p = select.poll()  # some ports refuse writes until the connect is done
        p.register(s, select.POLLOUT)
        t = time.ticks_ms()
        while not p.poll(0):
            if time.ticks_diff(time.ticks_ms(), t) > _IO_TIMEOUT_MS:
                raise OSError("timeout")
            await asyncio.sleep_ms(_STEP_MS)
        if self.tls:
            import ssl
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # never unverified by accident: without a CA, CERT_REQUIRED refuses every broker
            c.verify_mode = ssl.CERT_NONE if self.tls == "insecure" else ssl.CERT_REQUIRED  # type: ignore[attr-defined]
            if self.ca:
                c.load_verify_locations(cafile=self.ca)
            s = self._s = c.wrap_socket(s, server_hostname=self.host, do_handshake_on_connect=False)
        # flags: clean session 0x02, will 0x04, will QoS1 0x08, will retain 0x20,
        # password 0x40, user name 0x80
        v = bytearray(struct.pack("!H4sBBH", 4, "MQTT", 4, 0x2E if self.user is None else 0xEE,
                                  self.keepalive))
        for x in self._c + (self.user, self.password):
            if x is None:
                break
            if isinstance(x, str):
                x = x.encode()
            v += len(x).to_bytes(2, "big") + x
        try:  # with TLS the handshake happens here
            await self._io(s, _CONNECT, v)
            v = await self._io(s, bytearray(4))
        except ValueError as e:  # MicroPython's TLS: certificate refused
            raise OSError("tls: %s" % str(e).strip())
        if v[0] != _CONNACK or v[3]:  # the packet in hex: 200200cc, cc the refusal code
            raise OSError("CONNACK %x" % int.from_bytes(v, "big"))
        self.connected = True
        self.connects += 1
        self._log("mqtt: connected to %s:%d" % (self.host, self.port))
        if self.subs:
            self._pid = self._pid % 65535 + 1
            v = bytearray(self._pid.to_bytes(2, "big"))
            for x in self.subs:
                x = x.encode()
                v += len(x).to_bytes(2, "big") + x
                v.append(1)  # QoS1
            await self._io(s, _SUBSCRIBE, v)  # SUBACK is read but not tracked
        if self.on_connect:
            await self.on_connect()
        self._nx = 0  # all again: unacked ones carry DUP
        self._rx = self._ping = time.ticks_ms()
        return s

    # Sends what is queued and not sent on this connection: QoS1 keeps its entry (flagged
    # DUP for a retransmit after a reconnect) until its PUBACK, QoS0 goes once.
    async def _send(self, s):
        q = self._q
        while self._nx < len(q):
            c = q[self._nx]
            p, k = c[0], c[1]
            if p:
                c[1] = k | _DUP
                self._nx += 1
            else:
                q.pop(self._nx)
            x = c[2].encode()
            # topic, packet id (none for QoS0), then the payload as it is
            await self._io(s, k, len(x).to_bytes(2, "big") + x + p.to_bytes(p and 2, "big"), c[3])

    # Reads the rest of a packet (b: a 1-byte buffer holding its first byte; at EOF a stale
    # one: the next read raises): PUBACK ends its publish's entry, PUBLISH goes to on_message
    # (then its PUBACK when QoS1), read whole into a new buffer (pos 0, left 0); on the `big`
    # topic in pieces through one small buffer instead (pos: where a piece starts in the
    # payload, left: the bytes after it), so an OTA chunk never needs a block of its size
    # (firmware/README.md, OTA). SUBACK and PINGRESP only move the rx time.
    async def _read(self, s, b):
        k = b[0]
        n = sh = 0
        x = 128
        while x > 127:  # remaining length, up to 4 bytes
            x = (await self._io(s, b))[0]
            n |= (x & 127) << sh
            sh += 7
            if n > _RX_MAX or sh > 28:
                raise OSError("too large")
        if k & 0xF0 != _PUBLISH:  # PUBACK, SUBACK, PINGRESP: a few bytes
            v = await self._io(s, bytearray(n))
            if k & 0xF0 == _PUBACK:
                p = v[0] << 8 | v[1]
                q = self._q
                for i in range(len(q)):
                    if q[i][0] == p:
                        q.pop(i)
                        if i < self._nx:
                            self._nx -= 1
                        break
        else:
            v = await self._io(s, bytearray(2))
            x = await self._io(s, bytearray(v[0] << 8 | v[1]))  # the topic
            n -= (4 if k & 6 else 2) + len(x)  # below 0: bytearray() raises, the link goes down
            if k & 6:
                await self._io(s, v)  # the packet id
            x = x.decode()
            # no room: the packet stays unread, the link goes down and up (run), not the board
            m = memoryview(bytearray(_PIECE if x == self.big and n > _PIECE else n))
            p = 0
            while True:
                r = await self._io(s, m[:min(n - p, len(m))])
                self.on_message(x, r, k & 1, p, n - p - len(r))  # type: ignore[misc]  # set by the app
                p += len(r)
                if p == n:
                    break
            if k & 6:
                await self._io(s, _PUBACK, v)
        self._rx = time.ticks_ms()

    # With parts: writes one packet (b = its first header byte, then the remaining length,
    # then the parts as they are: no copy). Without: fills the bytearray b. Polls the
    # non-blocking socket; raises after _IO_TIMEOUT_MS a part. Returns b.
    async def _io(self, s, b, *parts):
        if parts:
            n = 0
            for x in parts:
                n += len(x)
            h = bytearray((b,))
            while True:
                h.append(n & 127 | (n > 127) << 7)
                n >>= 7
                if not n:
                    break
            parts = (h,) + parts
        for x in parts or (b,):
            m = memoryview(x)
            t = time.ticks_ms()
            while m:
                r = s.write(m) if parts else s.readinto(m)
                if r:
                    m = m[r:]
                elif r is None or parts:
                    if time.ticks_diff(time.ticks_ms(), t) > _IO_TIMEOUT_MS:
                        raise OSError("timeout")
                    await asyncio.sleep_ms(_STEP_MS)
                else:
                    raise OSError("closed")
        return b
