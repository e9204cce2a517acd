# Sen firmware: readings waiting for the broker, in RAM (a later issue puts them on flash).
# A ring of fixed-size slots in one bytearray allocated at boot (bufs.py): long-lived readings never
# fragment the heap. When full the oldest is dropped and counted. A reading leaves only
# through ack_upto(), i.e. once the envelope holding it was PUBACKed.
from array import array

from bufs import SLOT


class Pending:
    # buf: a preallocated bytearray of size * SLOT bytes
    def __init__(self, buf, size):
        self._size = size
        self._buf = buf
        self._mv = memoryview(self._buf)
        self._len = array("H", bytes(2 * size))
        self._seq = array("I", bytes(4 * size))
        self._head = 0
        self.count = 0
        self.dropped = 0

    # enc: the reading's JSON as bytes; False when it is too big for a slot (not queued).
    def push(self, seq, enc):
        n = len(enc)
        if n > SLOT:
            return False
        if self.count == self._size:
            self._pop()
            self.dropped += 1
        i = (self._head + self.count) % self._size
        self._buf[i * SLOT:i * SLOT + n] = enc
        self._len[i] = n
        self._seq[i] = seq
        self.count += 1
        return True

    # i-th oldest (0-based) as (seq, memoryview of its bytes); valid until the next push
    def peek(self, i):
        j = (self._head + i) % self._size
        return self._seq[j], self._mv[j * SLOT:j * SLOT + self._len[j]]

    def _pop(self):
        self._head = (self._head + 1) % self._size
        self.count -= 1

    # Forget every reading with seq <= last (seqs are increasing within a boot).
    def ack_upto(self, last):
        n = 0
        while self.count and self._seq[self._head] <= last:
            self._pop()
            n += 1
        return n
