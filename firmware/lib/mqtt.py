# Sen firmware: a small asyncio MQTT 3.1.1 client (our own; nothing copied).
# - CONNECT with clean session, keepalive and a retained QoS1 last will
# - PUBLISH QoS0/1 (retain optional); QoS1 kept by packet id until its PUBACK and sent
#   again with DUP and the same id after a reconnect
# - a reader task (CONNACK, PUBACK, PINGRESP, SUBACK, incoming PUBLISH -> on_message)
#   and a pinger task; run() reconnects with exponential backoff and jitter
# Writes go through one lock (two tasks may not wait on one socket in MicroPython
# asyncio); fixed headers are built in a preallocated buffer.
import asyncio
import random
import socket
import time

from micropython import const

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_DUP = const(0x08)
_IO_TIMEOUT_MS = const(5000)
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(8000)
_RX_MAX = const(4096)
_STEP_MS = const(10)  # how often a waiting task looks at its condition


class MQTTError(Exception):
    pass


class MQTTClient:
    def __init__(self, client_id, host, port, keepalive, will_topic, will_msg, log,
                 tx_max=128):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self._will = (will_topic, will_msg)
        self._log = log
        self.net_connect = None  # optional async callable -> bool (bring the link up)
        self.on_connect = None  # optional async callable, after each CONNACK
        self.on_message = None  # optional callable(topic, msg, retained)
        self.subs = []  # topics subscribed (QoS1) after each CONNACK, before on_connect
        self.user = None
        self.password = ""
        self.tls = False
        self.ca = None  # CA file on flash: verify the broker (else encrypted, not verified)
        self.connected = False
        self.connects = 0
        self._r = None
        self._w = None
        self._hdr = bytearray(5)  # packet type and remaining length (<= 4 bytes)
        self._tx = bytearray(tx_max)  # PUBLISH header, topic and packet id, built in place
        self._pid = 0
        self._inflight = {}  # pid -> [topic, msg, retain, sent]
        self._wlock = asyncio.Lock()
        # waits poll their condition every _STEP_MS instead of waiting on asyncio Events:
        # no Event objects (nor asyncio's event module) in RAM
        self._down = False  # the connection failed (the run task reconnects)
        self._tasks = []
        self._rx_t = time.ticks_ms()  # last packet from the broker

    # ---- public API ----
    def pending(self):
        return len(self._inflight)

    # Queues a publish and sends it when connected. Returns the packet id (0 for QoS0).
    async def publish(self, topic, msg, qos=1, retain=False):
        if qos == 0:
            if self.connected:
                await self._send_publish(topic, msg, 0, retain, 0, False)
            return 0
        self._pid = self._pid % 65535 + 1
        while self._pid in self._inflight:
            self._pid = self._pid % 65535 + 1
        pid = self._pid
        ent = [topic, msg, retain, False]
        self._inflight[pid] = ent
        if self.connected:
            ent[3] = True
            await self._send_publish(topic, msg, 1, retain, pid, False)
        return pid

    async def wait_ack(self, pid):
        while pid in self._inflight:
            await asyncio.sleep_ms(_STEP_MS)

    async def wait_connected(self):
        while not self.connected:
            await asyncio.sleep_ms(_STEP_MS)

    async def wait_idle(self):
        while self._inflight:
            await asyncio.sleep_ms(_STEP_MS)

    async def subscribe(self, topic, qos=1):
        # SUBACK is read but not tracked: a retained message follows it or nothing does.
        t = topic.encode()
        self._pid = self._pid % 65535 + 1
        i = self._fixed(_SUBSCRIBE, 5 + len(t))
        pkt = bytes(self._hdr[:i]) + bytes((self._pid >> 8, self._pid & 255,
                                            len(t) >> 8, len(t) & 255)) + t + bytes((qos,))
        await self._write(pkt)

    async def disconnect(self):
        if self.connected:
            self.connected = False
            try:
                await self._write(bytes((_DISCONNECT, 0)))
            except OSError:
                pass
        self._close()

    # Connection manager: run as a task for the life of the board.
    async def run(self):
        delay = _BACKOFF_MIN_MS
        while True:
            err = None
            try:
                if self.net_connect is not None and not await self.net_connect():
                    raise MQTTError("network down")
                await self._connect()
            except (OSError, EOFError, MQTTError, asyncio.TimeoutError) as e:
                err = e
            if err is not None:
                self._close()
                # equal jitter: half fixed, half random, so a fleet does not reconnect in step
                wait = delay // 2 + random.getrandbits(16) % (delay // 2 + 1)
                self._log("mqtt: %s:%d down (%r), retry in %d ms" % (self.host, self.port, err, wait))
                await asyncio.sleep_ms(wait)
                delay = min(delay * 2, _BACKOFF_MAX_MS)
                continue
            delay = _BACKOFF_MIN_MS
            while not self._down:
                await asyncio.sleep_ms(_STEP_MS)
            self._close()
            self._log("mqtt: connection lost")
            # a broker that accepts then drops at once must not make us spin
            await asyncio.sleep_ms(random.getrandbits(16) % _BACKOFF_MIN_MS + 50)

    # ---- internals ----
    def _fixed(self, kind, rem):
        h = self._hdr
        h[0] = kind
        i = 1
        while True:
            b = rem & 0x7F
            rem >>= 7
            h[i] = b | 0x80 if rem else b
            i += 1
            if not rem:
                return i

    # One whole packet per call (small packets only; PUBLISH goes through _tx).
    async def _write(self, pkt):
        w = self._w
        if w is None:
            raise OSError("not connected")
        async with self._wlock:
            w.write(pkt)
            await asyncio.wait_for_ms(w.drain(), _IO_TIMEOUT_MS)

    # Header, topic and packet id are built in a small preallocated buffer and the payload is
    # written as it is (no copy); TCP_NODELAY (set at connect) keeps the two writes from
    # meeting Nagle + delayed ACK (~40 ms per message).
    async def _send_publish(self, topic, msg, qos, retain, pid, dup):
        t = topic.encode()
        rem = 2 + len(t) + len(msg) + (2 if qos else 0)
        kind = _PUBLISH | qos << 1 | (1 if retain else 0) | (_DUP if dup else 0)
        if len(t) + 9 > len(self._tx):
            raise MQTTError("topic too long: %s" % topic)
        await self._wlock.acquire()
        try:
            await self._fill_send(kind, rem, t, pid, msg)
        finally:
            self._wlock.release()

    async def _fill_send(self, kind, rem, t, pid, msg):
        i = self._fixed(kind, rem)
        b = self._tx
        b[:i] = memoryview(self._hdr)[:i]
        b[i] = len(t) >> 8
        b[i + 1] = len(t) & 255
        i += 2
        b[i:i + len(t)] = t
        i += len(t)
        if pid:
            b[i] = pid >> 8
            b[i + 1] = pid & 255
            i += 2
        w = self._w
        if w is None:
            return  # went down meanwhile: stays in flight, sent again on reconnect
        try:
            w.write(memoryview(b)[:i])  # a part the socket cannot take now is copied
            w.write(msg)
            await asyncio.wait_for_ms(w.drain(), _IO_TIMEOUT_MS)
        except (OSError, asyncio.TimeoutError) as e:
            self._fail(e)

    def _connect_packet(self):
        cid = self.client_id.encode()
        wt = self._will[0].encode()
        wm = self._will[1]
        ka = self.keepalive
        # flags: clean session 0x02, will 0x04, will QoS1 0x08, will retain 0x20,
        # password 0x40, user name 0x80
        fl = 0x2E
        parts = [cid, wt, wm]
        if self.user is not None:
            fl |= 0xC0
            parts.append(self.user.encode())
            parts.append(self.password.encode())
        var = b"\x00\x04MQTT\x04" + bytes((fl, ka >> 8, ka & 255))
        pay = bytearray()
        for s in parts:
            pay += bytes((len(s) >> 8, len(s) & 255))
            pay += s
        i = self._fixed(_CONNECT, len(var) + len(pay))
        return bytes(self._hdr[:i]) + var + pay

    async def _connect(self):
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.ca:
                ctx.load_verify_locations(cafile=self.ca)
                ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
            else:
                ctx.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]
            conn = asyncio.open_connection(self.host, self.port, ssl=ctx)
        else:
            conn = asyncio.open_connection(self.host, self.port)
        r, w = await asyncio.wait_for_ms(
            conn, _IO_TIMEOUT_MS
        )  # type: asyncio.StreamReader, asyncio.StreamWriter
        self._r = r
        self._w = w
        s = getattr(w, "s", None)  # the socket under the asyncio stream
        if s is not None:
            try:
                s.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
            except (OSError, AttributeError):
                pass  # a port without it (or a TLS socket, which hides it) is only slower
        try:
            await self._write(self._connect_packet())  # with TLS: the handshake happens here
        except ValueError as e:  # MicroPython's TLS: certificate refused
            raise MQTTError("tls: %s" % str(e).strip())
        hdr = await asyncio.wait_for_ms(r.readexactly(4), _IO_TIMEOUT_MS)  # type: bytes
        if hdr[0] != _CONNACK or hdr[1] != 2:
            raise MQTTError("bad CONNACK")
        if hdr[3] != 0:
            raise MQTTError("CONNACK refused, code %d" % hdr[3])
        self._rx_t = time.ticks_ms()
        self._down = False
        self.connected = True
        self.connects += 1
        self._tasks = [asyncio.create_task(self._reader(r)), asyncio.create_task(self._pinger())]
        self._log("mqtt: connected to %s:%d" % (self.host, self.port))
        for t in self.subs:
            await self.subscribe(t, 1)
        if self.on_connect is not None:
            await self.on_connect()
        # Anything still unacknowledged goes again, same packet id, DUP set if sent before.
        for pid in sorted(self._inflight):
            ent = self._inflight.get(pid)
            if ent is not None and self.connected:
                dup = ent[3]
                ent[3] = True
                await self._send_publish(ent[0], ent[1], 1, ent[2], pid, dup)

    def _fail(self, err):
        if self.connected:
            self._log("mqtt: error %r" % (err,))
        self.connected = False
        self._down = True

    def _close(self):
        self.connected = False
        cur = asyncio.current_task()
        for t in self._tasks:
            if t is not cur:
                t.cancel()
        self._tasks = []
        if self._w is not None:
            try:
                self._w.close()
            except OSError:
                pass
        self._r = self._w = None

    async def _read_len(self, r):
        n = 0
        sh = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7
            if sh > 21:
                raise MQTTError("bad remaining length")

    async def _reader(self, r):
        try:
            while True:
                kind = (await r.readexactly(1))[0]
                n = await self._read_len(r)
                if n > _RX_MAX:
                    raise MQTTError("packet too large: %d" % n)
                body = await r.readexactly(n) if n else b""
                self._rx_t = time.ticks_ms()
                k = kind & 0xF0
                if k == _PUBACK and n >= 2:
                    self._inflight.pop(body[0] << 8 | body[1], None)
                elif k == _PUBLISH:
                    await self._on_publish(kind, body)
                # PINGRESP and SUBACK need nothing beyond the _rx_t update
        except (OSError, EOFError, MQTTError, asyncio.TimeoutError) as e:
            self._fail(e)

    async def _on_publish(self, kind, body):
        tl = body[0] << 8 | body[1]
        topic = body[2:2 + tl].decode()
        i = 2 + tl
        if kind & 0x06:
            pid = body[i] << 8 | body[i + 1]
            i += 2
            await self._write(bytes((_PUBACK, 2, pid >> 8, pid & 255)))
        if self.on_message is not None:
            self.on_message(topic, body[i:], bool(kind & 1))

    async def _pinger(self):
        ka = self.keepalive * 1000
        try:
            while self.connected:
                await asyncio.sleep_ms(ka // 2)
                if time.ticks_diff(time.ticks_ms(), self._rx_t) > ka:
                    raise MQTTError("no answer from broker for %d ms" % ka)
                await self._write(bytes((_PINGREQ, 0)))
        except (OSError, MQTTError, asyncio.TimeoutError) as e:
            self._fail(e)
