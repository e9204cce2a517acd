"""OTA benchmarks on the MicroPython unix port: the board's Ed25519 verifier (firmware/lib/ed25519.py).

    python -m bench.ota_bench [--json]

- verify: ms per Ed25519 verification of RFC 8032's TEST 1 (empty message) and TEST 1024
  (1,023 bytes, about a manifest's size), median of 5, at `-X heapsize=64K`, the module
  precompiled as a board runs it (mpy-cross -O3); the SHA-512 alone in µs per KiB.
- heap: what the module costs once imported (gc.mem_alloc() after a collection, before and
  after), and the smallest `-X heapsize` in which the TEST 1024 verification still passes
  (the interpreter and this script included: its own ~2 KiB baseline is printed beside it).
- receiver (`receiver()`): the board's OTA receiver (firmware/lib/ota.py, .mpy, what the app
  loads) taking a bundle of the real firmware (.mpy, built by `sen ota build`) in 1 KiB chunks,
  each handed over in 128-byte pieces as the MQTT client reads it (mqtt.py), with the two boot
  steps between (otaboot.py: the head's signature check, then the files
  unpacked into a slot and hashed), at 64K: the heap the receiver costs once imported and the
  most it holds after any chunk (after a collection), its slowest chunk, each boot step's time,
  the whole transfer, and the smallest heap the whole transfer (boot steps included) runs in.

Prints a table; `--json` prints one JSON object instead. The figures are the unix port's
(64-bit, desktop CPU): an ESP32 at 240 MHz is roughly 30-100x slower at long-int arithmetic
and its objects are about half the size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.firmware_bench import run_script
from hardware.sim import find_micropython

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "firmware" / "lib"
VECTORS = ROOT / "tests" / "firmware" / "rfc8032_ed25519.json"

# Runs inside MicroPython: argv = module dir, vectors file, what ("all" | "verify1024" | "base").
_SCRIPT = """
import gc, sys, time, json, binascii
gc.collect()
base = gc.mem_alloc()
what = sys.argv[3]
if what == "base":
    print("RESULT", json.dumps({"base": base}))
    sys.exit(0)
sys.path.insert(0, sys.argv[1])
u = binascii.unhexlify
with open(sys.argv[2]) as f:
    vec = json.load(f)["vectors"]
v1 = [u(vec[0]["public"]), u(vec[0]["message"]), u(vec[0]["signature"])]
v4 = [u(vec[3]["public"]), u(vec[3]["message"]), u(vec[3]["signature"])]
vec = None
gc.collect()
before = gc.mem_alloc()
import ed25519
gc.collect()
imp = gc.mem_alloc() - before
if what == "verify1024":
    print("RESULT", json.dumps({"ok": ed25519.verify(v4[0], v4[1], v4[2])}))
    sys.exit(0)
def med(v):
    t = []
    for i in range(5):
        gc.collect()
        t0 = time.ticks_us()
        ok = ed25519.verify(v[0], v[1], v[2])
        t.append(time.ticks_diff(time.ticks_us(), t0))
        assert ok
    t.sort()
    return t[2] / 1000
data = bytes(4096)
gc.collect()
t0 = time.ticks_us()
ed25519.SHA512(data).digest()
sha = time.ticks_diff(time.ticks_us(), t0) / 4
r = {"import": imp, "verify_empty_ms": med(v1), "verify_1023_ms": med(v4), "sha512_us_per_kib": sha}
print("RESULT", json.dumps(r))
"""


# Runs inside MicroPython: argv = module dir, flash dir, public key hex, plan file (u32 length +
# message, repeated; the head's chunks, then the files'). As the app, the MQTT client and runner
# do: the receiver (ota) takes each message in 128-byte pieces (mqtt.py); when it sets "chk" the
# board reboots and the boot step (otaboot) checks the head, or unpacks the files; each part is
# measured apart (heap after a collection: the most in use, above what was in use before it;
# time).
_RECEIVER = """
import gc, sys, os, time, json
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
import log  # the app has it
gc.collect()
b0 = gc.mem_alloc()
import ota
gc.collect()
imp = gc.mem_alloc() - b0
class App:
    pass
a = App()
a.ota, a.cfg, a._ota_pub = {}, {"ota_pub": sys.argv[3]}, False
live = slow = 0
steps = []
t0 = time.ticks_ms()
with open(sys.argv[4], "rb") as f:
    n4 = bytearray(4)
    while f.readinto(n4) == 4:
        n = int.from_bytes(n4, "big")
        msg = memoryview(f.read(n))
        t = time.ticks_us()
        for pos in range(0, n, 128):
            ota.take(a, msg[pos:pos + 128], pos, max(0, n - pos - 128))
        slow = max(slow, time.ticks_diff(time.ticks_us(), t))
        msg = None
        gc.collect()
        live = max(live, gc.mem_alloc() - b0)
        if a.ota.get("chk"):
            del sys.modules["ota"]
            ota = None
            gc.collect()
            t = time.ticks_ms()
            import otaboot
            cfg = {"ota_pub": sys.argv[3], "board": "sim"}
            otaboot.boot(cfg)
            ms = time.ticks_diff(time.ticks_ms(), t)
            gc.collect()
            steps.append(ms)
            for m in ("otaboot", "otaslot", "ed25519"):
                sys.modules.pop(m, None)
            cfg = None
            gc.collect()
            a.ota = st = json.load(open("sen_ota.json"))
            gc.collect()
            b0 = gc.mem_alloc()  # what the app holds comes after a reboot: measured from here
            import ota
total = time.ticks_diff(time.ticks_ms(), t0)
res = {"st": a.ota["st"], "import": imp, "live": live, "slowest_ms": slow / 1000, "total_ms": total,
       "check_ms": steps[0], "unpack_ms": steps[1]}
print("RESULT", json.dumps(res))
"""

def receiver(micropython: str | None = None) -> dict[str, Any]:
    """The OTA receiver's figures at 64K, and the smallest heap a whole transfer runs in."""
    from gateway.ops import ota, ota_keys
    from gateway.ops.ota_push import chunk, chunks, transfer_id

    micropython = micropython or find_micropython()
    cross = Path(micropython).with_name("mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ota_keys.keygen(base / "keys")
        bundle_path = base / "app.senota"
        manifest = ota.build(ota_keys.load_key(base / "keys" / "ota.key"), version="1.5.0", boards=["sim"],
                             out=bundle_path, mpy=True, mpy_cross=str(cross))
        bundle = bundle_path.read_bytes()
        head = ota.HEAD + ota.manifest_length(bundle[:12])
        tid = transfer_id(bundle)
        with open(base / "plan.bin", "wb") as f:
            for _, message in chunks(bundle[:head], 1024):
                f.write(len(message).to_bytes(4, "big") + message)
            for at in range(head, len(bundle), 1024):
                message = chunk(tid, at, bundle[at:at + 1024])
                f.write(len(message).to_bytes(4, "big") + message)
        mods = base / "mods"
        mods.mkdir()
        for name in ("ota", "otaboot", "otaslot", "ed25519", "log"):
            subprocess.run([str(cross), "-O3", "-X", "no-source-lines", "-s", name, "-o", str(mods / f"{name}.mpy"),
                            str(LIB / f"{name}.py")], check=True)
        script = base / "recv.py"
        script.write_text(_RECEIVER)
        pub = ota_keys.load_pub(base / "keys" / "ota.pub").hex()

        def run(heap: str) -> dict[str, Any] | None:
            flash = Path(tempfile.mkdtemp(dir=base))
            done = subprocess.run([micropython, "-X", f"heapsize={heap}", str(script), str(mods), f"{flash}/", pub,
                                   str(base / "plan.bin")], capture_output=True, text=True, timeout=300)
            for line in done.stdout.splitlines():
                if line.startswith("RESULT "):
                    got: dict[str, Any] = json.loads(line[7:])
                    return got if got.get("st") == "ready" else None
            return None

        figures = run("64K")
        if figures is None:
            raise SystemExit("the OTA receiver failed at -X heapsize=64K")
        lo, hi = 2, 64
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if run(f"{mid}K") else (mid, hi)
        figures.update(smallest_heap_kib=hi, bundle=len(bundle), files=len(manifest["files"]),
                       manifest=ota.manifest_length(bundle[:12]))
    return figures


def _vm(micropython: str, mod_dir: Path, what: str, heap: str) -> dict[str, Any] | None:
    done = run_script(micropython, _SCRIPT, [str(mod_dir), str(VECTORS), what], 300, heap=heap)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    return None


def smallest_heap(micropython: str, mod_dir: Path) -> int:
    """The smallest heap (KiB) in which TEST 1024 verifies."""
    lo, hi = 2, 64  # lo fails, hi works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got = _vm(micropython, mod_dir, "verify1024", f"{mid}K")
        if got is not None and got.get("ok") is True:
            hi = mid
        else:
            lo = mid
    return hi


def verifier(micropython: str | None = None) -> dict[str, Any]:
    """The verifier's figures: time, import heap, smallest heap; precompiled as on a board."""
    micropython = micropython or find_micropython()
    cross = Path(micropython).with_name("mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        mod_dir = Path(tmp)
        subprocess.run([str(cross), "-O3", "-s", "ed25519", "-o", str(mod_dir / "ed25519.mpy"),
                        str(LIB / "ed25519.py")], check=True)
        figures = _vm(micropython, mod_dir, "all", "64K")
        if figures is None:
            raise SystemExit("the verifier failed at -X heapsize=64K")
        figures["heap"] = "64K"
        figures["smallest_heap_kib"] = smallest_heap(micropython, mod_dir)
        figures["script_base"] = (_vm(micropython, mod_dir, "base", "64K") or {}).get("base")
    return figures


def _table(r: dict[str, Any], rx: dict[str, Any]) -> str:
    return "\n".join([
        "Ed25519 verifier (firmware/lib/ed25519.py, .mpy, unix port, -X heapsize=64K)",
        f"  verify, empty message (RFC 8032 TEST 1)  {r['verify_empty_ms']:8.1f} ms",
        f"  verify, 1,023 B message (TEST 1024)      {r['verify_1023_ms']:8.1f} ms",
        f"  SHA-512                                  {r['sha512_us_per_kib']:8.0f} µs/KiB",
        f"  heap once imported                       {r['import']:8d} B",
        f"  smallest heap that verifies TEST 1024    {r['smallest_heap_kib']:8d} KiB"
        f" (interpreter + bench script alone: {r['script_base']} B in use)",
        f"OTA receiver (firmware/lib/ota.py in the app, otaboot.py at boot, .mpy): {rx['bundle']:,} B bundle, "
        f"{rx['files']} files, {rx['manifest']:,} B manifest, 1 KiB chunks",
        f"  receiver: heap once imported             {rx['import']:8d} B",
        f"  receiver: most it holds after a chunk    {rx['live']:8d} B (the import included)",
        f"  receiver: slowest chunk                  {rx['slowest_ms']:8.1f} ms",
        f"  boot step: head check (signature)        {rx['check_ms']:8d} ms",
        f"  boot step: files unpacked and hashed     {rx['unpack_ms']:8d} ms",
        f"  whole transfer                           {rx['total_ms']:8d} ms",
        f"  smallest heap for the whole transfer     {rx['smallest_heap_kib']:8d} KiB",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result, rx = verifier(), receiver()
    print(json.dumps({"verifier": result, "receiver": rx}) if args.json else _table(result, rx))
    return 0


if __name__ == "__main__":
    sys.exit(main())
