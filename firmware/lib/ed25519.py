# Ed25519 signature verification (RFC 8032, section 5.1.7) with its SHA-512, for MicroPython:
# the board checks an OTA manifest's signature with the public key it was provisioned with.
# MicroPython's hashlib has sha256 but no sha512 (unix port and ESP32 builds alike), and no
# Ed25519 at all, so both are here, written for small heaps: 64-bit words and field elements
# are plain ints (MicroPython's long ints), the hash streams through one 128-byte block buffer,
# and verification is one joint ladder over both scalars (Straus), no tables.
# Verify only: this file never sees a private key. Not constant time (nothing secret here).
import struct

_M = 0xFFFFFFFFFFFFFFFF
_K = (
    b"\x42\x8a\x2f\x98\xd7\x28\xae\x22\x71\x37\x44\x91\x23\xef\x65\xcd"
    b"\xb5\xc0\xfb\xcf\xec\x4d\x3b\x2f\xe9\xb5\xdb\xa5\x81\x89\xdb\xbc"
    b"\x39\x56\xc2\x5b\xf3\x48\xb5\x38\x59\xf1\x11\xf1\xb6\x05\xd0\x19"
    b"\x92\x3f\x82\xa4\xaf\x19\x4f\x9b\xab\x1c\x5e\xd5\xda\x6d\x81\x18"
    b"\xd8\x07\xaa\x98\xa3\x03\x02\x42\x12\x83\x5b\x01\x45\x70\x6f\xbe"
    b"\x24\x31\x85\xbe\x4e\xe4\xb2\x8c\x55\x0c\x7d\xc3\xd5\xff\xb4\xe2"
    b"\x72\xbe\x5d\x74\xf2\x7b\x89\x6f\x80\xde\xb1\xfe\x3b\x16\x96\xb1"
    b"\x9b\xdc\x06\xa7\x25\xc7\x12\x35\xc1\x9b\xf1\x74\xcf\x69\x26\x94"
    b"\xe4\x9b\x69\xc1\x9e\xf1\x4a\xd2\xef\xbe\x47\x86\x38\x4f\x25\xe3"
    b"\x0f\xc1\x9d\xc6\x8b\x8c\xd5\xb5\x24\x0c\xa1\xcc\x77\xac\x9c\x65"
    b"\x2d\xe9\x2c\x6f\x59\x2b\x02\x75\x4a\x74\x84\xaa\x6e\xa6\xe4\x83"
    b"\x5c\xb0\xa9\xdc\xbd\x41\xfb\xd4\x76\xf9\x88\xda\x83\x11\x53\xb5"
    b"\x98\x3e\x51\x52\xee\x66\xdf\xab\xa8\x31\xc6\x6d\x2d\xb4\x32\x10"
    b"\xb0\x03\x27\xc8\x98\xfb\x21\x3f\xbf\x59\x7f\xc7\xbe\xef\x0e\xe4"
    b"\xc6\xe0\x0b\xf3\x3d\xa8\x8f\xc2\xd5\xa7\x91\x47\x93\x0a\xa7\x25"
    b"\x06\xca\x63\x51\xe0\x03\x82\x6f\x14\x29\x29\x67\x0a\x0e\x6e\x70"
    b"\x27\xb7\x0a\x85\x46\xd2\x2f\xfc\x2e\x1b\x21\x38\x5c\x26\xc9\x26"
    b"\x4d\x2c\x6d\xfc\x5a\xc4\x2a\xed\x53\x38\x0d\x13\x9d\x95\xb3\xdf"
    b"\x65\x0a\x73\x54\x8b\xaf\x63\xde\x76\x6a\x0a\xbb\x3c\x77\xb2\xa8"
    b"\x81\xc2\xc9\x2e\x47\xed\xae\xe6\x92\x72\x2c\x85\x14\x82\x35\x3b"
    b"\xa2\xbf\xe8\xa1\x4c\xf1\x03\x64\xa8\x1a\x66\x4b\xbc\x42\x30\x01"
    b"\xc2\x4b\x8b\x70\xd0\xf8\x97\x91\xc7\x6c\x51\xa3\x06\x54\xbe\x30"
    b"\xd1\x92\xe8\x19\xd6\xef\x52\x18\xd6\x99\x06\x24\x55\x65\xa9\x10"
    b"\xf4\x0e\x35\x85\x57\x71\x20\x2a\x10\x6a\xa0\x70\x32\xbb\xd1\xb8"
    b"\x19\xa4\xc1\x16\xb8\xd2\xd0\xc8\x1e\x37\x6c\x08\x51\x41\xab\x53"
    b"\x27\x48\x77\x4c\xdf\x8e\xeb\x99\x34\xb0\xbc\xb5\xe1\x9b\x48\xa8"
    b"\x39\x1c\x0c\xb3\xc5\xc9\x5a\x63\x4e\xd8\xaa\x4a\xe3\x41\x8a\xcb"
    b"\x5b\x9c\xca\x4f\x77\x63\xe3\x73\x68\x2e\x6f\xf3\xd6\xb2\xb8\xa3"
    b"\x74\x8f\x82\xee\x5d\xef\xb2\xfc\x78\xa5\x63\x6f\x43\x17\x2f\x60"
    b"\x84\xc8\x78\x14\xa1\xf0\xab\x72\x8c\xc7\x02\x08\x1a\x64\x39\xec"
    b"\x90\xbe\xff\xfa\x23\x63\x1e\x28\xa4\x50\x6c\xeb\xde\x82\xbd\xe9"
    b"\xbe\xf9\xa3\xf7\xb2\xc6\x79\x15\xc6\x71\x78\xf2\xe3\x72\x53\x2b"
    b"\xca\x27\x3e\xce\xea\x26\x61\x9c\xd1\x86\xb8\xc7\x21\xc0\xc2\x07"
    b"\xea\xda\x7d\xd6\xcd\xe0\xeb\x1e\xf5\x7d\x4f\x7f\xee\x6e\xd1\x78"
    b"\x06\xf0\x67\xaa\x72\x17\x6f\xba\x0a\x63\x7d\xc5\xa2\xc8\x98\xa6"
    b"\x11\x3f\x98\x04\xbe\xf9\x0d\xae\x1b\x71\x0b\x35\x13\x1c\x47\x1b"
    b"\x28\xdb\x77\xf5\x23\x04\x7d\x84\x32\xca\xab\x7b\x40\xc7\x24\x93"
    b"\x3c\x9e\xbe\x0a\x15\xc9\xbe\xbc\x43\x1d\x67\xc4\x9c\x10\x0d\x4c"
    b"\x4c\xc5\xd4\xbe\xcb\x3e\x42\xb6\x59\x7f\x29\x9c\xfc\x65\x7e\x2a"
    b"\x5f\xcb\x6f\xab\x3a\xd6\xfa\xec\x6c\x44\x19\x8c\x4a\x47\x58\x17"
)
_H = (
    b"\x6a\x09\xe6\x67\xf3\xbc\xc9\x08\xbb\x67\xae\x85\x84\xca\xa7\x3b"
    b"\x3c\x6e\xf3\x72\xfe\x94\xf8\x2b\xa5\x4f\xf5\x3a\x5f\x1d\x36\xf1"
    b"\x51\x0e\x52\x7f\xad\xe6\x82\xd1\x9b\x05\x68\x8c\x2b\x3e\x6c\x1f"
    b"\x1f\x83\xd9\xab\xfb\x41\xbd\x6b\x5b\xe0\xcd\x19\x13\x7e\x21\x79"
)


class SHA512:
    # hashlib-like: update(data) any number of times, then digest() once (64 bytes).
    def __init__(self, data=None):
        self.h = list(struct.unpack(">8Q", _H))
        self.buf = bytearray(128)
        self.n = 0  # bytes hashed so far
        if data:
            self.update(data)

    def update(self, data):
        buf = self.buf
        i = 0
        ln = len(data)
        while i < ln:
            at = self.n & 127
            take = min(128 - at, ln - i)
            buf[at:at + take] = data[i:i + take]
            i += take
            self.n += take
            if (self.n & 127) == 0:
                self._block()

    def digest(self):
        n = self.n
        buf = self.buf
        at = n & 127
        buf[at] = 0x80
        for j in range(at + 1, 128):
            buf[j] = 0
        if at >= 112:
            self._block()
            for j in range(128):
                buf[j] = 0
        struct.pack_into(">QQ", buf, 112, n >> 61, (n << 3) & _M)
        self._block()
        return struct.pack(">8Q", *self.h)

    def _block(self):
        M = _M
        K = _K
        w = list(struct.unpack(">16Q", self.buf))
        a, b, c, d, e, f, g, h = self.h
        for t in range(80):
            j = t & 15
            if t >= 16:
                x = w[(t - 15) & 15]
                y = w[(t - 2) & 15]
                w[j] = (w[j] + w[(t - 7) & 15]
                        + (((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7))
                        + (((y >> 19) | (y << 45)) ^ ((y >> 61) | (y << 3)) ^ (y >> 6))) & M
            t1 = (h + ((((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))) & M)
                  + ((e & f) ^ ((e ^ M) & g)) + struct.unpack_from(">Q", K, t << 3)[0] + w[j])
            t2 = (((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))) & M
            t2 += (a & b) ^ (a & c) ^ (b & c)
            h = g
            g = f
            f = e
            e = (d + t1) & M
            d = c
            c = b
            b = a
            a = (t1 + t2) & M
        s = self.h
        s[0] = (s[0] + a) & M
        s[1] = (s[1] + b) & M
        s[2] = (s[2] + c) & M
        s[3] = (s[3] + d) & M
        s[4] = (s[4] + e) & M
        s[5] = (s[5] + f) & M
        s[6] = (s[6] + g) & M
        s[7] = (s[7] + h) & M


# The curve: -x^2 + y^2 = 1 + d x^2 y^2 over GF(p), p = 2^255 - 19; L is the group order.
P = (1 << 255) - 19
L = (1 << 252) + 27742317777372353535851937790883648493
D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161  # 2d mod p
SQRTM1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960


def _pow(b, e):
    # b^e mod p: the built-in three-argument pow where the port has it, else square-and-multiply.
    try:
        return pow(b, e, P)
    except Exception:
        r = 1
        b %= P
        while e:
            if e & 1:
                r = r * b % P
            b = b * b % P
            e >>= 1
        return r


# Points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z (Hisil et al. 2008).
def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = p[3] * D2 % P * q[3] % P
    d = 2 * p[2] * q[2] % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _dbl(p):
    a = p[0] * p[0] % P
    b = p[1] * p[1] % P
    c = 2 * p[2] * p[2] % P
    h = a + b
    s = p[0] + p[1]
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _decode(s):
    # RFC 8032 5.1.3: 32 bytes -> a point, or None when they encode none.
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    yy = y * y % P
    u = (yy - 1) % P
    v = (D2 * yy * ((P + 1) >> 1) + 1) % P  # d*y^2 + 1 (D2/2 = d)
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow(u * v3 % P * v3 % P * v % P, (P - 5) >> 3) % P
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx != P - u:
            return None
        x = x * SQRTM1 % P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _encode(p):
    zi = _pow(p[2], P - 2)
    x = p[0] * zi % P
    y = p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def verify(pub, msg, sig):
    # True when sig (64 bytes) is pub's (32 bytes) Ed25519 signature of msg (bytes, a list of
    # bytes-like parts hashed in order, or a file read to its end); False otherwise.
    if len(pub) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    a = _decode(pub)
    if a is None:
        return False
    h = SHA512(sig[:32])
    h.update(pub)
    if hasattr(msg, "readinto"):  # a file, streamed through one 128-byte buffer
        b = bytearray(128)
        while True:
            n = msg.readinto(b)
            if not n:
                break
            h.update(b if n == 128 else memoryview(b)[:n])
    elif isinstance(msg, (list, tuple)):
        for part in msg:
            h.update(part)
    else:
        h.update(msg)
    k = int.from_bytes(h.digest(), "little") % L
    del h
    # [s]B + [k](-A) by one ladder over both scalars; it equals R when the signature is good.
    na = ((P - a[0]) % P, a[1], 1, (P - a[3]) % P)
    bp = (_BX, _BY, 1, _BX * _BY % P)
    both = _add(bp, na)
    q = (0, 1, 1, 0)
    for i in range(252, -1, -1):
        q = _dbl(q)
        bs = (s >> i) & 1
        bk = (k >> i) & 1
        if bs and bk:
            q = _add(q, both)
        elif bs:
            q = _add(q, bp)
        elif bk:
            q = _add(q, na)
    return _encode(q) == bytes(sig[:32])
