# Sen firmware: the outbox, an append-only record log (a file on flash, or RAM).
# Record: 8-byte header <magic 0xA5, type, u16 length, u32 crc32 of type+length+payload>,
# then the payload. A power cut mid-append tears at most the last record; the boot scan
# stops at the first record that does not check and rewrites the file without it.
#   type 'R' (reading): u32 boot, u32 seq, u32 up (ms), reading JSON
#   type 'H' (head):    u32 offset of the oldest live record, u32 dropped so far
# Readings are appended in (boot, seq) order, so an end-to-end ack, and drop-oldest,
# both move the head over a prefix; an 'H' record makes that durable.
# mode "ram": the same log in an io.BytesIO (lost at reset, but bounded and counted).
import binascii
import io
import os
import struct

from micropython import const

_MAGIC = const(0xA5)
_R = const(0x52)
_H = const(0x48)
_HDR = const(8)
_REC_MAX = const(512)  # largest payload accepted
_COMPACT_MIN = const(8192)  # head offset past which the live part is copied to a new file
_MAX_FILE = const(262144)

_hdr = bytearray(_HDR)
_rec = bytearray(_REC_MAX)
_recmv = memoryview(_rec)


def _crc(kind, n, data):
    _hdr[1] = kind
    _hdr[2] = n & 255
    _hdr[3] = n >> 8
    return binascii.crc32(data, binascii.crc32(memoryview(_hdr)[1:4])) & 0xFFFFFFFF


class Outbox:
    # path: the log file (None for RAM); limit: live readings kept before drop-oldest
    def __init__(self, path, limit):
        self.path = path
        self.limit = limit
        self._mem = io.BytesIO() if path is None else None
        self.count = 0  # live readings (head .. end)
        self.dropped = 0
        self.head = 0  # offset of the oldest live record
        self.end = 0  # offset after the last good record
        self.torn = 0  # bytes cut off at boot (a torn or corrupt tail)
        self.last = (0, 0)  # (boot, seq) of the newest live reading
        self.cursor = 0  # offset of the first reading not yet handed over (PUBACK / written)
        self.unsent = 0  # live readings at or after cursor

    # ---- file access: open per operation (littlefs commits on close) ----
    def _open(self, mode):
        if self._mem is not None:
            return self._mem
        return open(self.path, mode)

    def _close(self, f):
        if self._mem is None:
            f.close()

    # Reads the record at off into _rec: (kind, payload length) or None when it does not check.
    def _read(self, f, off):
        f.seek(off)
        if f.readinto(_hdr) != _HDR or _hdr[0] != _MAGIC:
            return None
        kind = _hdr[1]
        n = _hdr[2] | _hdr[3] << 8
        crc = struct.unpack_from("<I", _hdr, 4)[0]
        if n > _REC_MAX or f.readinto(_recmv[:n]) != n:
            return None
        if _crc(kind, n, _recmv[:n]) != crc:
            return None
        return kind, n

    def _append(self, f, kind, data):
        n = len(data)
        crc = _crc(kind, n, data)
        _hdr[0] = _MAGIC
        struct.pack_into("<I", _hdr, 4, crc)
        if self._mem is not None:
            f.seek(self.end)
        f.write(bytes(_hdr) + data)  # one write: a cut leaves the old file or a torn tail
        self.end += _HDR + n

    # Boot: scan the log, find the head, count live readings, cut a torn tail.
    def open(self):
        if self._mem is not None:
            return
        try:
            f = self._open("rb")
        except OSError:
            f = None
        size = 0
        if f is not None:
            try:
                size = f.seek(0, 2)
                off = 0
                while off < size:
                    r = self._read(f, off)
                    if r is None:
                        break
                    if r[0] == _H:
                        self.head, self.dropped = struct.unpack_from("<II", _rec, 0)
                    off += _HDR + r[1]
                self.end = off
                self._count(f)
                self.rewind()
            finally:
                f.close()
        self.torn = size - self.end
        if self.torn or self.head > _COMPACT_MIN:
            self._compact()

    def _count(self, f):
        off = self.head
        self.count = 0
        while off < self.end:
            r = self._read(f, off)
            if r is None:
                break
            if r[0] == _R:
                self.count += 1
                self.last = struct.unpack_from("<II", _rec, 0)
            off += _HDR + r[1]

    # Appends one reading; drops the oldest (counted) when the outbox is full.
    def push(self, boot, seq, up, enc):
        if len(enc) + 12 > _REC_MAX:
            return False
        f = self._open("ab")
        try:
            if self.count >= self.limit:
                self._drop_oldest(f)
            struct.pack_into("<III", _rec, 0, boot, seq, up)
            _rec[12:12 + len(enc)] = enc
            self._append(f, _R, _recmv[:12 + len(enc)])
        finally:
            self._close(f)
        self.count += 1
        self.unsent += 1
        self.last = (boot, seq)
        return True

    def _drop_oldest(self, f):
        r = self._open("rb") if self._mem is None else f
        try:
            off = self.head
            while off < self.end:
                k = self._read(r, off)
                if k is None:
                    break
                off += _HDR + k[1]
                if k[0] == _R:
                    break
        finally:
            if r is not f:
                r.close()
        if self.cursor < off:
            self.cursor = off
            self.unsent -= 1
        self.head = off
        self.count -= 1
        self.dropped += 1
        self._mark(f)

    def _mark(self, f):
        b = struct.pack("<II", self.head, self.dropped)
        self._append(f, _H, b)

    # End-to-end ack: forget every reading of boots before `boot`, and of `boot` up to `seq`.
    # Returns the number of readings forgotten.
    def ack(self, boot, seq):
        f = self._open("rb")
        gone = 0
        off = self.head
        try:
            while off < self.end:
                k = self._read(f, off)
                if k is None:
                    break
                if k[0] == _R:
                    b, s = struct.unpack_from("<II", _rec, 0)
                    if b > boot or (b == boot and s > seq):
                        break
                    gone += 1
                off += _HDR + k[1]
        finally:
            self._close(f)
        if not gone:
            return 0
        self.head = off
        self.count -= gone
        if self.cursor < off:
            self.rewind()
        if not self.count and (self.end > _COMPACT_MIN or self._mem is not None):
            self._reset()
        elif self.head > _COMPACT_MIN and self.head * 2 > self.end or self.end > _MAX_FILE:
            self._compact()
        else:
            f = self._open("ab")
            try:
                self._mark(f)
            finally:
                self._close(f)
        return gone

    # Nothing live: start an empty log (a torn write now loses nothing).
    def _reset(self):
        if self._mem is not None:
            self._mem = io.BytesIO()
        else:
            open(self.path, "wb").close()
        self.head = self.end = self.cursor = 0
        f = self._open("ab")
        try:
            self._mark(f)
        finally:
            self._close(f)

    # Copies the live readings to a new log and renames it over the old one (atomic).
    def _compact(self):
        src = self._open("rb")
        new = io.BytesIO() if self._mem is not None else open(self.path + ".new", "wb")
        old_end = self.end
        off = self.head
        cur = self.cursor
        self.head = self.end = 0
        try:
            self._mark(new)
            self.cursor = self.end
            while off < old_end:
                k = self._read(src, off)
                if k is None:
                    break
                if k[0] == _R:
                    self._append(new, _R, _recmv[:k[1]])
                    if off < cur:
                        self.cursor = self.end  # handed-over readings stay handed over
                off += _HDR + k[1]
        finally:
            self._close(src)
            if self._mem is None:
                new.close()
        if self._mem is not None:
            self._mem = new
        else:
            os.rename(self.path + ".new", self.path)

    # Hand everything live over again (after a reconnect, or no end-to-end ack in time).
    def rewind(self):
        self.cursor = self.head
        self.unsent = self.count

    # The n readings from start to off were handed over (PUBACK, or written to serial);
    # nothing moves when the cursor was rewound meanwhile.
    def advance(self, start, off, n):
        if start == self.cursor and off > self.cursor:
            self.cursor = off
            self.unsent = max(0, self.unsent - n)

    # The envelope's "lo" and "ob" (tests/contract/ack.md): (seq of the oldest live reading of
    # `boot`, or `dflt` when none is live; boot of the oldest live reading, or `boot`).
    def lo(self, boot, dflt):
        f = self._open("rb")
        off = self.head
        ob = 0
        try:
            while off < self.end:
                k = self._read(f, off)
                if k is None:
                    break
                if k[0] == _R:
                    b, s = struct.unpack_from("<II", _rec, 0)
                    if not ob:
                        ob = b
                    if b >= boot:
                        return (s if b == boot else dflt), min(ob, boot)
                off += _HDR + k[1]
        finally:
            self._close(f)
        return dflt, ob or boot

    # Iterates live readings from offset `off`: calls fn(boot, seq, up, json memoryview)
    # until it returns False; returns the offset of the first reading not taken.
    def scan(self, off, fn):
        if off < self.head:
            off = self.head
        f = self._open("rb")
        try:
            while off < self.end:
                k = self._read(f, off)
                if k is None:
                    break
                if k[0] == _R:
                    b, s, u = struct.unpack_from("<III", _rec, 0)
                    if not fn(b, s, u, _recmv[12:k[1]]):
                        break
                off += _HDR + k[1]
        finally:
            self._close(f)
        return off
