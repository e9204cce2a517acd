# Sen firmware: the outbox, an append-only record log (a file on flash, or RAM).
# Record: 8-byte header <magic 0xA5, type, u16 length, u32 crc32 of type+length+payload>,
# then the payload. A power cut mid-append tears at most the last record; the boot scan
# stops at the first record that does not check and rewrites the file without it.
#   type 'U' (reading): u32 boot, u32 seq, u64 up (ms), reading JSON
#   type 'R' (a reading of firmware before 'U', read as ever): u32 boot, u32 seq, u32 up
#            (which wrapped after 49.7 days of uptime), reading JSON
#   type 'H' (head):    u32 offset of the oldest live record, u32 dropped so far
# The type is the record's format version: a log written by older firmware is read (acked,
# sent, compacted) by this one, its 'R' records kept as they are.
# Readings are appended in (boot, seq) order, so an end-to-end ack, and drop-oldest,
# both move the head over a prefix; an 'H' record makes that durable (the last one wins).
# Once the dead part is big, the live readings are copied to a new log (then an 'H': head 0),
# renamed over the old one (atomic).
# RAM (path None): the same log in an io.BytesIO, lost at reset, bounded and counted; no 'H'.
# One loop, walk(), reads the log for every purpose (its modes below): fewer functions
# loaded is less heap (firmware/README.md, Memory). What it found is left in named fields
# (w_*, see walk()); payload.py asks by name: take() and oldest().
import io
import os
from binascii import crc32
from struct import pack_into, unpack_from

from micropython import const

_MAGIC = const(0xA5)
_U = const(0x55)
_R = const(0x52)
_H = const(0x48)
_REC_MAX = const(512)  # largest payload accepted
_COMPACT_MIN = const(8192)  # head offset past which the live part is copied to a new file
_MAX_FILE = const(262144)
# walk() modes (private: payload.py calls take() and oldest())
_ALL = const(0)  # every record: 'H' sets head and dropped
_ACK = const(1)  # passes readings up to (b0, s0), stops at the first after them
_TAKE = const(2)  # copies readings' JSON into fn (a memoryview), see walk()
_DROP = const(3)  # passes one reading
_COPY = const(4)  # compaction: copies the live readings to a new log; b0: the cursor

# A record's header and its first 16 bytes (a reading's boot, seq, up; an 'H' record's 8),
# then the rest of a record streamed through in chunks when it is checked or copied: records
# never need a buffer of their size (a reading's JSON is written from, and read into, its
# place directly).
_rec = bytearray(64)
_mv = memoryview(_rec)
_hd = _mv[:24]


class Outbox:
    # path: the log file (None for RAM); limit: live readings kept before drop-oldest.
    # On flash, scans the log: finds the head, counts live readings, cuts a torn tail.
    def __init__(self, path, limit):
        self.f = path or io.BytesIO()  # a str (flash) or the RAM log
        self.limit = limit
        # live readings (head .. end), dropped so far, offset of the oldest live record,
        # offset after the last good record, bytes cut at boot (a torn or corrupt tail),
        # offset of the first reading not yet handed over (PUBACK / written), live readings
        # from there on
        self.count = self.dropped = self.head = self.end = self.torn = self.cursor = \
            self.unsent = 0
        # walk()'s results, set here too: their room in the object is taken at boot, while
        # the heap is still in one piece, not at the first envelope
        self.w_n = self.w_boot = self.w_b = self.w_s = self.w_len = self.w_seq = self.w_up = 0
        self.last = (0, 0)  # (boot, seq) of the newest live reading
        if path:
            try:
                self.end = size = os.stat(path)[6]
            except OSError:
                return  # no log yet
            self.end = self.walk(_ALL, 0, 0, 0, None)
            # the live part counted without a second CRC pass (ACK past every boot: no stop)
            self.walk(_ACK, self.head, 1 << 30, 0, None)
            self.count = self.w_n
            self.last = (self.w_b, self.w_s)
            self.rewind()
            self.torn = size - self.end
            if self.torn or self.head > _COMPACT_MIN:
                self.walk(_COPY, self.head, self.cursor, 0, None)

    # Reads the log from offset off to its end, record by record, for `mode` (above); ALL
    # (the boot scan) checks every record's CRC, the others trust what it checked and what
    # was written since. TAKE takes readings of one boot, b0 at most, comma-separated, while
    # they end below fn[s0].
    # Returns the offset where it stopped, and leaves what it found in named fields:
    #   w_n              readings passed (TAKE: taken)
    #   w_boot           boot of the first of them
    #   w_b, w_s         boot and seq of the last reading read (ACK: the one it stopped at)
    #   w_len            TAKE: bytes put in fn
    #   w_seq, w_up      TAKE: seq and up (ms) of the last reading taken
    def walk(self, mode, off, b0, s0, fn):
        p = self.f
        f = open(p, "rb") if type(p) is str else p
        end = self.end
        n = first = b = s = i = t = v = 0
        if mode == _COPY:
            fn = io.BytesIO() if f is p else open(p + ".new", "wb")
        try:
            while off < end:
                f.seek(off)
                x = f.readinto(_hd)
                m, k, ln, crc = unpack_from("<BBHI", _rec)
                nxt = off + 8 + ln
                if x < 16 or m != _MAGIC or ln > _REC_MAX:
                    break
                if mode == _ALL or mode == _COPY and (k == _U or k == _R):
                    # the payload in chunks: ALL checks the CRC, COPY copies the reading
                    f.seek(off + 8)
                    c = crc32(_mv[1:4])
                    if mode == _COPY:
                        fn.write(_mv[:8])
                    x = 0
                    while x < ln:
                        u = f.readinto(_mv[24:24 + min(40, ln - x)])
                        if not u:
                            break
                        c = crc32(_mv[24:24 + u], c)
                        if mode == _COPY:
                            fn.write(_mv[24:24 + u])
                        x += u
                    if mode == _ALL and c != crc:
                        break
                if k == _H:
                    if mode == _ALL:
                        self.head, self.dropped = unpack_from("<II", _rec, 8)
                elif k == _U or k == _R:
                    b, s, u = unpack_from("<IIQ" if k == _U else "<III", _rec, 8)
                    if not n:
                        first = b
                    if mode == _ACK:
                        if b > b0 or b == b0 and s > s0:
                            break
                    elif mode == _TAKE:
                        ln = nxt - off - (24 if k == _U else 20)
                        if n:
                            if b != first or n >= b0 or i + ln >= s0:
                                break
                            fn[i] = 44  # ","
                            i += 1
                        f.seek(nxt - ln)  # the JSON, after boot, seq and up
                        f.readinto(fn[i:i + ln])
                        i += ln
                        t = s
                        v = u
                    elif mode == _DROP:
                        off = nxt
                        n = 1
                        break
                    elif mode == _COPY and off < b0:
                        t = fn.tell()  # handed-over readings stay handed over
                    n += 1
                off = nxt
            if mode == _COPY:
                self.head = 0
                self.cursor = t
                self.end = fn.tell()
                self._put(_H, b"", fn)
        finally:
            if f is not p:
                f.close()
                if mode == _COPY:
                    fn.close()
        if mode == _COPY:
            if f is p:
                self.f = fn
            else:
                os.rename(p + ".new", p)
        self.w_n, self.w_boot, self.w_b, self.w_s, self.w_len, self.w_seq, self.w_up = \
            n, first, b, s, i, t, v
        return off

    # Appends a record to the log, or to f (a new log): _rec[8:16] ('H') or _rec[8:24] ('U':
    # boot, seq, up), then x (a reading's JSON). An 'H' record (the head moved) is filled in
    # here and written on flash only; with f None, the log is compacted instead once its dead
    # part (before the head) is past 8 KiB (any size in RAM) and more than half of it, or the
    # log is past _MAX_FILE.
    def _put(self, k, x, f):
        p = self.f
        ram = type(p) is not str
        q = 24
        if k == _H:
            h = self.head
            if not f and h > (0 if ram else _COMPACT_MIN) and (h * 2 > self.end
                                                             or self.end > _MAX_FILE):
                self.walk(_COPY, h, self.cursor, 0, None)
                return
            if ram:
                return
            pack_into("<II", _rec, 8, h, self.dropped)
            q = 16
        pack_into("<BBH", _rec, 0, _MAGIC, k, q - 8 + len(x))
        pack_into("<I", _rec, 4, crc32(x, crc32(_mv[8:q], crc32(_mv[1:4]))))
        g = f or (p if ram else open(p, "ab"))
        try:
            g.seek(self.end)
            # a cut in between leaves a torn tail (its CRC does not check: cut at boot)
            g.write(_mv[:q])
            g.write(x)
        finally:
            if not (f or ram):
                g.close()
        self.end += q + len(x)

    # Appends one reading; drops the oldest (counted) when the outbox is full. False when
    # the reading is too big for a record.
    def push(self, boot, seq, up, enc):
        n = len(enc) + 16
        if n > _REC_MAX:
            return False
        if self.count >= self.limit:
            off = self.walk(_DROP, self.head, 0, 0, None)
            if self.cursor < off:
                self.cursor = off
                self.unsent -= 1
            self.head = off
            self.count -= 1
            self.dropped += 1
            self._put(_H, b"", None)
        pack_into("<IIQ", _rec, 8, boot, seq, up)
        self._put(_U, enc, None)
        self.count += 1
        self.unsent += 1
        self.last = (boot, seq)
        return True

    # End-to-end ack: forget every reading of boots before `boot`, and of `boot` up to `seq`.
    # Returns the number of readings forgotten.
    def ack(self, boot, seq):
        off = self.walk(_ACK, self.head, boot, seq, None)
        n = self.w_n
        if n:
            self.head = off
            self.count -= n
            if self.cursor < self.head:
                self.rewind()
            self._put(_H, b"", None)
        return n

    # For payload.build, the next envelope's readings: copies the unsent ones from the cursor
    # (one boot, bmax at most, comma-separated, while they fit in buf, a memoryview) into buf.
    # Returns the offset after them (the cursor once they are handed over, see advance());
    # w_n, w_boot, w_len, w_seq and w_up (walk) say how many, their boot, the bytes, and the
    # last one's seq and up.
    def take(self, buf, bmax):
        return self.walk(_TAKE, self.cursor, bmax, len(buf), buf)

    # The seq of boot's oldest live reading (an envelope's "lo"); w_boot is then the oldest
    # boot still in the outbox (its "ob" when older than boot). boot has readings here.
    def oldest(self, boot):
        self.walk(_ACK, self.head, boot, -1, None)
        return self.w_s

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
