"""The outbox (firmware/lib/outbox.py) and the envelope builder (firmware/lib/payload.py) on
the real MicroPython VM, through their public interface: records survive a reboot, a torn or
corrupt tail is cut at boot, drop-oldest is bounded and counted, compaction keeps what is live
(and what was handed over stays handed over), RAM mode, and the envelope's `lo` and `ob`
(tests/contract/ack.md); uptime past 32 bits, and a log written by firmware before the
64-bit uptime (its 'R' records) read by this one."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.firmware

PRELUDE = """
import sys, json, os
sys.path.insert(1, %r)
import payload
from outbox import Outbox
LOG = %r
BUF = bytearray(2048)
FID = 4000000001
def st(o):
    return [o.count, o.dropped, list(o.last), o.unsent, o.torn]
def fresh(limit=100):
    return Outbox(LOG, limit)  # a boot: scans the log
def put(o, boot, seqs, pad=0):
    for s in seqs:
        m = {"x": s}
        for i in range(pad):
            m["k" + str(i)] = 1.5
        enc = payload.reading(s, None, s * 10, m)
        if not o.push(boot, s, s * 10, enc): raise ValueError(s)
def env(o, boot, bmax=10, site=None):
    a, e, n, nxt, b, last = payload.build(o, BUF, bmax, boot, 99, {"outbox": o.count}, "dev-1", FID, "sim", site)
    if not n: return None
    o.advance(o.cursor, nxt, n)
    j = json.loads(bytes(BUF[a:e]))
    if [b, last] != [j["boot"], j["r"][-1]["seq"]] or n != len(j["r"]): raise ValueError("boot, last, n")
    return j
def out(x): print(json.dumps(x))
"""


def _mp(micropython_bin: str, repo_root: Path, tmp_path: Path, body: str) -> list[Any]:
    code = PRELUDE % (str(repo_root / "firmware" / "lib"), str(tmp_path / "ob.bin")) + body
    done = subprocess.run([micropython_bin, "-X", "heapsize=256K", "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_reading_encoding(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
print(payload.reading(7, 1763800000123, 5, {"t": 21.5}).decode())
print(payload.reading(8, None, 923400, {"a": 1, "b": float("nan"), "c": float("inf"),
                                        "d": -float("inf"), "e": True, "f": "x", "g": -0.5}).decode())
out(payload.reading(9, None, 1, {"b": float("nan"), "e": False}))
""")
    assert r[0] == {"seq": 7, "ts": 1763800000123, "m": {"t": 21.5}}
    assert r[1] == {"seq": 8, "up": 923400, "m": {"a": 1, "g": -0.5}}
    assert r[2] is None


def test_reading_carries_its_sensor(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
print(payload.reading(7, 1763800000123, 5, {"t": 21.5}, "sht31_45").decode())
print(payload.reading(8, None, 923400, {"a": 1}, "bme280").decode())
""")
    assert r[0] == {"seq": 7, "ts": 1763800000123, "s": "sht31_45", "m": {"t": 21.5}}
    assert list(r[0]) == ["seq", "ts", "s", "m"]
    assert r[1] == {"seq": 8, "up": 923400, "s": "bme280", "m": {"a": 1}}


def test_survives_reboot_and_acks(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(); put(o, 1, range(1, 11)); out(st(o))
o = fresh(); out(st(o)); out(o.ack(1, 4)); out(st(o))
o = fresh(); out(st(o))
e = env(o, 1, 3); out([e["boot"], e["lo"], [x["seq"] for x in e["r"]], "ob" in e, o.unsent])
out(o.ack(0, 99)); out(o.ack(1, 4)); out(o.ack(1, 7)); out(st(o))
o = fresh(); out(st(o)); out(o.ack(1, 10)); out(st(o)); o = fresh(); out(st(o))
""")
    assert r[0] == [10, 0, [1, 10], 10, 0]
    assert r[1] == [10, 0, [1, 10], 10, 0]
    assert r[2] == 4
    assert r[3] == [6, 0, [1, 10], 6, 0]
    assert r[4] == [6, 0, [1, 10], 6, 0]
    assert r[5] == [1, 5, [5, 6, 7], False, 3]
    assert r[6:9] == [0, 0, 3]
    assert r[9] == [3, 0, [1, 10], 3, 0]
    assert r[10] == [3, 0, [1, 10], 3, 0]
    assert r[11] == 3
    assert r[12][0] == 0 and r[13][0] == 0


def test_torn_and_corrupt_tail_cut_at_boot(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(); put(o, 1, range(1, 6)); full = os.stat(LOG)[6]
with open(LOG, "rb") as f: data = f.read()
with open(LOG, "wb") as f: f.write(data[:-3])  # power cut in the middle of the last record
o = fresh(); out(st(o)); out(os.stat(LOG)[6] - (full - 3 - o.torn))  # rewritten: + an 'H' record
put(o, 1, [5, 6]); o = fresh(); out(st(o))
e = env(o, 1); out([x["seq"] for x in e["r"]])
with open(LOG, "rb") as f: data = bytearray(f.read())
data[data.find(b'"seq":2,') + 2] ^= 0xFF  # a corrupt byte in the second reading: it and all after go
with open(LOG, "wb") as f: f.write(data)
o = fresh(); out(st(o)[:3]); out(o.torn > 0)
put(o, 1, range(2, 6), 15)
with open(LOG, "rb") as f: data = bytearray(f.read())
data[data.find(b'"seq":4,') + 150] ^= 0x01  # deep in the JSON of the fourth reading
with open(LOG, "wb") as f: f.write(data)
o = fresh(); out(st(o)[:3]); out(o.torn > 100)
""")
    assert r[0][:4] == [4, 0, [1, 4], 4] and r[0][4] > 3
    assert r[1] == 16
    assert r[2] == [6, 0, [1, 6], 6, 0]
    assert r[3] == [1, 2, 3, 4, 5, 6]
    assert r[4] == [1, 0, [1, 1]]
    assert r[5] is True
    assert r[6] == [3, 0, [1, 3]] and r[7] is True


def test_drop_oldest_bounded_counted(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(3); put(o, 1, range(1, 6)); out(st(o))
e = env(o, 1); out([e["lo"], [x["seq"] for x in e["r"]]])
o = fresh(3); out(st(o)); put(o, 1, [6]); out(st(o))
e = env(o, 1, 2); out([e["lo"], [x["seq"] for x in e["r"]], o.unsent])
put(o, 1, [7, 8]); out(st(o))  # 4 and 5 were handed over: dropping them leaves unsent as is
e = env(o, 1); out([e["lo"], [x["seq"] for x in e["r"]]])
big = 0
for s in range(9, 400):  # a long outage: the log stays bounded
    put(o, 1, [s], 15); big = max(big, os.stat(LOG)[6])
out(big < 24000); o = fresh(3); out(st(o))
e = env(o, 1); out([e["lo"], [x["seq"] for x in e["r"]]])
""")
    assert r[0] == [3, 2, [1, 5], 3, 0]
    assert r[1] == [3, [3, 4, 5]]
    assert r[2] == [3, 2, [1, 5], 3, 0]
    assert r[3] == [3, 3, [1, 6], 3, 0]
    assert r[4] == [4, [4, 5], 1]
    assert r[5] == [3, 5, [1, 8], 3, 0]
    assert r[6] == [6, [6, 7, 8]]
    assert r[7] is True
    assert r[8] == [3, 396, [1, 399], 3, 0]
    assert r[9] == [397, [397, 398, 399]]


def test_compaction_keeps_live_and_handed_over(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(1000); put(o, 1, range(1, 101), 15); a = os.stat(LOG)[6]  # ~20 KB of log
for i in range(7): env(o, 1, 10)  # 1..70 handed over
out(o.ack(1, 60)); out(st(o)); out(os.stat(LOG)[6] * 2 < a)  # compacted: 61..100 left
e = env(o, 1, 10); out([e["lo"], e["r"][0]["seq"], e["r"][-1]["seq"], o.unsent])  # 61..70 stay sent
o = fresh(1000); out(st(o)); put(o, 1, range(101, 201), 15)
out(o.ack(1, 200)); out(st(o)); out(os.stat(LOG)[6] < 100)  # nothing live: an empty log
o = fresh(1000); out(st(o)); put(o, 2, range(1, 101), 15); a = os.stat(LOG)[6]
out(o.ack(2, 45)); out(os.stat(LOG)[6] > a)  # head past 8 KiB, under half the log: kept
o = fresh(1000); out(st(o)); out(os.stat(LOG)[6] * 10 < a * 6)  # compacted at boot
e = env(o, 2, 1); out([e["lo"], e["r"][0]["seq"]])
""")
    assert r[0] == 60
    assert r[1] == [40, 0, [1, 100], 30, 0]
    assert r[2] is True
    assert r[3] == [61, 71, 80, 20]
    assert r[4] == [40, 0, [1, 100], 40, 0]
    assert r[5] == 140
    assert r[6][:3] == [0, 0, [1, 200]] and r[7] is True
    assert r[8][:2] == [0, 0]
    assert r[9] == 45 and r[10] is True
    assert r[11] == [55, 0, [2, 100], 55, 0] and r[12] is True
    assert r[13] == [46, 46]


def test_lo_and_ob_across_boots(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(); put(o, 1, range(1, 6)); o.ack(1, 2)
o = fresh(); put(o, 2, range(1, 4))
e = env(o, 2); out([e["boot"], e["lo"], e.get("ob"), [x["seq"] for x in e["r"]], e["up"]])
e = env(o, 2); out([e["boot"], e["lo"], e.get("ob"), [x["seq"] for x in e["r"]], e["up"]])
out(env(o, 2))
out(o.ack(1, 0)); o.rewind()
e = env(o, 2, 2); out([e["boot"], e["lo"], e.get("ob")])
out(o.ack(1, 5)); o.rewind()
a, e, n, nxt, b, last = payload.build(o, BUF, 2, 2, 7, {"outbox": 2}, "dev-1", FID, "sim", "lab")
print(bytes(BUF[a:e]).decode())
""")
    assert r[0] == [1, 3, None, [3, 4, 5], 50]  # an old boot's envelope: up of its last reading
    assert r[1] == [2, 1, 1, [1, 2, 3], 99]
    assert r[2] is None
    assert r[3] == 0
    assert r[4] == [1, 3, None]
    assert r[5] == 3
    assert r[6] == {"v": 1, "site": "lab", "dev": "dev-1", "fid": 4000000001, "boot": 2, "up": 7, "lo": 1,
                    "board": "sim", "r": [{"seq": 1, "up": 10, "m": {"x": 1}}, {"seq": 2, "up": 20, "m": {"x": 2}}],
                    "d": {"outbox": 2}}
    assert list(r[6]) == ["v", "site", "dev", "fid", "boot", "up", "lo", "board", "r", "d"]


def test_ram_mode(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = Outbox(None, 5); put(o, 3, range(1, 9)); out(st(o))
e = env(o, 3, 2); out([e["lo"], [x["seq"] for x in e["r"]], o.unsent])
out(o.ack(3, 5)); out(st(o)); out(o.cursor == o.head)
put(o, 3, range(9, 200), 15); out(st(o))
out(o.ack(3, 195)); out(st(o))
e = env(o, 3); out([e["lo"], [x["seq"] for x in e["r"]]])
out(o.ack(3, 199)); out(st(o)); out([o.head, o.cursor])
put(o, 3, [200]); e = env(o, 3); out([e["lo"], [x["seq"] for x in e["r"]]])
out(LOG.split("/")[-1] in os.listdir(LOG.rsplit("/", 1)[0]))
o = Outbox(None, 5); put(o, 1, range(1, 400), 15); out(o.end < 24000)  # RAM stays bounded
""")
    assert r[0] == [5, 3, [3, 8], 5, 0]
    assert r[1] == [4, [4, 5], 3]
    assert r[2] == 2
    assert r[3] == [3, 3, [3, 8], 3, 0]
    assert r[4] is True
    assert r[5] == [5, 192, [3, 199], 5, 0]
    assert r[6] == 1
    assert r[7] == [4, 192, [3, 199], 4, 0]
    assert r[8] == [196, [196, 197, 198, 199]]
    assert r[9] == 4
    assert r[10][:2] == [0, 192] and r[11] == [0, 0]
    assert r[12] == [200, [200]]
    assert r[13] is False
    assert r[14] is True


def test_envelope_fits_the_buffer(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    r = _mp(micropython_bin, repo_root, tmp_path, """
BUF = bytearray(1024)
o = fresh(); put(o, 1, range(1, 11), 15)
while o.unsent:
    e = env(o, 1); out([len(json.dumps(e)) <= 1024, [x["seq"] for x in e["r"]]])
""")
    assert all(fits for fits, _ in r)
    assert sum((seqs for _, seqs in r), []) == list(range(1, 11))
    assert len(r) > 2 and all(len(seqs) < 10 for _, seqs in r)


def test_uptime_past_32_bits_is_kept(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    # An old boot's envelope says the up of its last reading, from the record: once stored in
    # 32 bits, it wrapped after 49.7 days of uptime.
    up = 3 * (1 << 32) + 1234  # ~149 days
    r = _mp(micropython_bin, repo_root, tmp_path, """
UP = %d
def put_up(o, boot, seqs):
    for s in seqs:
        o.push(boot, s, UP + s, payload.reading(s, None, UP + s, {"x": s}))
o = fresh(); put_up(o, 1, [1, 2, 3])
o = fresh(); put(o, 2, [1])  # a reboot: boot 1 is replayed from the log
e = env(o, 2); out([e["boot"], e["up"], [x["up"] for x in e["r"]]])
o = Outbox(None, 5); put_up(o, 1, [1, 2]); put(o, 2, [1])
e = env(o, 2); out([e["boot"], e["up"]])
a, e, n, nxt, b, last = payload.build(o, BUF, 10, 2, UP * 1000, {}, "d" * 32, 4294967295, "b" * 32, "s" * 32)
out([a >= 0, json.loads(bytes(BUF[a:e]))["up"] == UP * 1000])  # the longest header fits
""" % up)
    assert r[0] == [1, up + 3, [up + 1, up + 2, up + 3]]
    assert r[1] == [1, up + 2]
    assert r[2] == [True, True]


def _old_log(path: Path, records: list[tuple[Any, ...]], cut: int = 0) -> list[int]:
    """A log as firmware before the 64-bit uptime wrote it (its outbox.py, byte for byte):
    ("R", boot, seq, up, json) readings, ("H", index of the head record, dropped). Returns
    each record's offset."""
    out, offs = b"", []
    for rec in records:
        offs.append(len(out))
        if rec[0] == "R":
            k, body = 0x52, struct.pack("<III", *rec[1:4]) + rec[4].encode()
        else:
            k, body = 0x48, struct.pack("<II", offs[rec[1]], rec[2])
        crc = zlib.crc32(body, zlib.crc32(struct.pack("<BH", k, len(body))))
        out += struct.pack("<BBHI", 0xA5, k, len(body), crc) + body
    path.write_bytes(out[:len(out) - cut])
    return offs


def _old_reading(seq: int, pad: int = 0) -> tuple[Any, ...]:
    m = {"t": 20.5, **{f"k{i}": 1.5 for i in range(pad)}}
    js = json.dumps({"seq": seq, "up": 1000 * seq, "s": "sht31", "m": m}, separators=(",", ":"))
    return ("R", 1, seq, 1000 * seq, js)


def test_a_log_of_older_firmware_is_read(micropython_bin: str, repo_root: Path, tmp_path: Path) -> None:
    # Updated with readings waiting on flash: none is lost, acked twice or changed.
    _old_log(tmp_path / "ob.bin", [_old_reading(s) for s in range(1, 7)] + [("H", 2, 5)])
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(); out(st(o)); put(o, 2, [1, 2])
e = env(o, 2); out([e["boot"], e["lo"], e["up"], e.get("ob"), e["r"]])
e = env(o, 2); out([e["boot"], e["lo"], e.get("ob"), [x["seq"] for x in e["r"]]])
o = fresh(); out(st(o)); out(o.ack(1, 4)); o = fresh(); out(st(o))
e = env(o, 2); out([e["boot"], [x["seq"] for x in e["r"]]])
out(o.ack(1, 6)); out(o.ack(2, 2)); out(st(o))
""")
    assert r[0] == [4, 5, [1, 6], 4, 0]
    assert r[1] == [1, 3, 6000, None, [{"seq": s, "up": 1000 * s, "s": "sht31", "m": {"t": 20.5}}
                                       for s in range(3, 7)]]
    assert r[2] == [2, 1, 1, [1, 2]]
    assert r[3] == [6, 5, [2, 2], 6, 0]  # old and new records side by side after a reboot
    assert r[4] == 2 and r[5] == [4, 5, [2, 2], 4, 0]
    assert r[6] == [1, [5, 6]]
    assert r[7:9] == [2, 2] and r[9][:2] == [0, 5]


def test_a_log_of_older_firmware_compacted_and_cut(micropython_bin: str, repo_root: Path,
                                                   tmp_path: Path) -> None:
    # Its head past 8 KiB: copied to a new log at boot, its records kept as they were; a torn
    # last record is cut as ever.
    offs = _old_log(tmp_path / "ob.bin", [_old_reading(s, 15) for s in range(1, 100)] + [("H", 60, 0)]
                    + [_old_reading(100, 15)], cut=30)
    assert offs[60] > 8192
    r = _mp(micropython_bin, repo_root, tmp_path, """
o = fresh(1000); out(st(o)[:3]); out(o.torn); out(os.stat(LOG)[6] < 40 * 300)
seqs, rs = [], []
while o.unsent:
    e = env(o, 1, 50); seqs += [x["seq"] for x in e["r"]]; rs.append(e["r"][0]); los = e["lo"]
out([los, seqs, rs[0]["up"], len(rs[0]["m"])])
o = fresh(1000); out(st(o)[:3])
""")
    assert r[0] == [39, 0, [1, 99]]
    assert r[1] == 8 + 12 + len(_old_reading(100, 15)[4]) - 30  # what was left of the last one
    assert r[2] is True
    assert r[3] == [61, list(range(61, 100)), 61000, 16]
    assert r[4] == [39, 0, [1, 99]]
