"""A cellular board's power saving as a person says it (``1h``, ``10s``, ``81.92``) and as the
modem takes it: the timer bytes of ``AT+CPSMS`` and the eDRX value of ``AT+CEDRXS``
(3GPP TS 24.008: GPRS Timer 3 for the periodic TAU, T3412 extended; GPRS Timer 2 for the
active time, T3324; §10.5.5.32 for the eDRX cycle). firmware/CELLULAR.md, Configuration.

A timer byte is a unit (bits 8-6) and a count of it (bits 5-1, 0..31), so only some
durations can be asked for: one that cannot is refused with the nearest that can. The network
decides what it grants (``AT+CEREG?`` with ``AT+CEREG=4`` shows it); these are requests.
"""

from __future__ import annotations

import re
from typing import Any

from hardware.errors import ProvisionError

# unit bits -> seconds
TAU_UNITS = {0b011: 2, 0b100: 30, 0b101: 60, 0b000: 600, 0b001: 3600, 0b010: 36_000, 0b110: 1_152_000}
ACTIVE_UNITS = {0b000: 2, 0b001: 60, 0b010: 360}
# eDRX cycle (seconds) -> its 4 bits; some are for LTE-M (WB-S1) or NB-IoT (NB-S1) only: the
# network refuses those for the other
EDRX_CYCLES = {5.12: "0000", 10.24: "0001", 20.48: "0010", 40.96: "0011", 61.44: "0100", 81.92: "0101",
               102.4: "0110", 122.88: "0111", 143.36: "1000", 163.84: "1001", 327.68: "1010", 655.36: "1011",
               1310.72: "1100", 2621.44: "1101", 5242.88: "1110", 10485.76: "1111"}
EDRX_ACTS = {"ltem": 4, "nbiot": 5}  # AT+CEDRXS's <AcT-type>: E-UTRAN WB-S1, NB-S1
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")
_SECONDS = {"d": 86_400, "h": 3600, "m": 60, "s": 1, "": 1}


def parse_duration(text: str, what: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h``, ``2h30m``, ``1d`` -> seconds."""
    spec = text.strip().lower()
    parts = _PART.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec or sum(1 for _, u in parts if not u) > (len(parts) == 1):
        raise ProvisionError(f"{what} {text!r}: not a duration (say 90s, 10m, 1h, 2h30m or 1d)")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def _say(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def timer_byte(seconds: float, units: dict[int, int], what: str) -> str:
    """The timer byte for exactly ``seconds`` (the largest unit that carries it), as 8 bits."""
    exact = [(size, bits) for bits, size in units.items() if seconds % size == 0 and 0 <= seconds / size <= 31]
    if exact:
        size, bits = max(exact) if seconds else min(exact)  # 0: "00000000", as people write it
        return f"{bits:03b}{int(seconds // size):05b}"
    carried = sorted({size * n for size in units.values() for n in range(32)})
    below = [s for s in carried if s < seconds]
    above = [s for s in carried if s > seconds]
    near = " or ".join(_say(s) for s in (below[-1:] + above[:1]))
    raise ProvisionError(f"{what} {_say(seconds)}: the modem's timer cannot carry it; the nearest it can: {near}")


def psm(tau: str, active: str) -> dict[str, str]:
    """config.json's ``cell.psm`` for a periodic TAU and an active time (``--psm-tau``, ``--psm-active``)."""
    tau_s, active_s = parse_duration(tau, "--psm-tau"), parse_duration(active, "--psm-active")
    if tau_s <= 0:
        raise ProvisionError("--psm-tau must be longer than 0 (how often the modem wakes to tell the network)")
    if active_s >= tau_s:
        raise ProvisionError(f"--psm-active {_say(active_s)} must be shorter than --psm-tau {_say(tau_s)}")
    return {"tau": timer_byte(tau_s, TAU_UNITS, "--psm-tau"),
            "active": timer_byte(active_s, ACTIVE_UNITS, "--psm-active")}


def edrx(cycle: str, act: str = "ltem") -> dict[str, Any]:
    """config.json's ``cell.edrx`` for a cycle in seconds (``--edrx``) on ``act`` (``--edrx-act``)."""
    if act not in EDRX_ACTS:
        raise ProvisionError(f"--edrx-act must be one of {', '.join(EDRX_ACTS)} (got {act!r})")
    seconds = parse_duration(cycle, "--edrx")
    value = next((bits for s, bits in EDRX_CYCLES.items() if abs(s - seconds) < 0.005), None)
    if value is None:
        raise ProvisionError(f"--edrx {cycle}: an eDRX cycle is one of {', '.join(map(str, EDRX_CYCLES))} s")
    return {"act": EDRX_ACTS[act], "value": value}


def from_flags(transport: str, tau: str | None, active: str | None, cycle: str | None,
               act: str | None) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    """``sen provision``'s --psm-tau, --psm-active, --edrx, --edrx-act -> (cell.psm, cell.edrx), each
    None when not asked for (the firmware then sends ``AT+CPSMS=0``, and leaves eDRX as the modem has it)."""
    if transport != "cellular" and (tau, active, cycle, act) != (None, None, None, None):
        raise ProvisionError("--psm-tau, --psm-active, --edrx and --edrx-act set a modem's power saving: "
                             "--transport cellular")
    if (tau is None) != (active is None):
        raise ProvisionError("give --psm-tau and --psm-active together (how often the modem wakes to tell "
                             "the network, and how long it listens after)")
    if act is not None and cycle is None:
        raise ProvisionError("--edrx-act goes with --edrx (the cycle, in seconds)")
    return (None if tau is None or active is None else psm(tau, active),
            None if cycle is None else edrx(cycle, act or "ltem"))
