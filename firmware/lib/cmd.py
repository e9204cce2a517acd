# Sen firmware: commands from the cmd topic (tests/contract/cmd/README.md). A board answers
# nothing on cmd: it acts, and the next envelope's d says so (bad_cmd counts the rest).
import json
import os

from log import log
from sensors import STATE


# settings changed by cmd, persisted in STATE (sensors.build reads them at boot)
def _save_state(key, ms):
    try:
        with open(STATE) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = {}
    if key == "interval_ms":  # all sensors: drop the per-sensor overrides
        st = {}
    st[key] = ms
    with open(STATE + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(STATE + ".tmp", STATE)


def handle(app, j):
    c = j.get("cmd")
    if c == "set_interval":
        ms = j.get("interval_ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or not 10 <= ms <= 86400000:
            raise ValueError("interval_ms must be an integer 10..86400000")
        name = j.get("sensor")
        hit = [s for s in app.samplers if name is None or s.name == name]
        if not hit:
            raise ValueError("no sensor %r" % (name,))
        for s in hit:
            s.every = ms
            s.wake = True  # sample now and start the new interval
        _save_state("interval_ms" if name is None else "i_" + name, ms)
        log("cmd: interval %d ms for %s (saved)" % (ms, name or "all sensors"))
    elif c == "reboot":
        log("cmd: reboot (the outbox is on flash)")
        app.reboot()
    elif c == "diag":
        log("cmd: diagnostics now")
        app.flush()
    elif c == "sync_time":
        ms = j.get("epoch_ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1000000000000:
            raise ValueError("epoch_ms must be Unix ms")
        app.anchor = ms - app.uptime()
        log("cmd: clock set from the gateway")
    else:
        raise ValueError("unknown cmd %r" % (c,))
