"""A board profile's ``modem``: the cellular modem on the board itself, and how it is wired.

    "modem": {"family": "sim7080", "uart": 1, "tx": 5, "rx": 4, "pwrkey": 41, "pwrkey_active": 1,
              "pmu": {"chip": "axp2101", "sda": 15, "scl": 7}}

``sen provision --transport cellular`` takes the modem's wiring from it (a ``--modem-*`` flag
still wins) and copies ``pmu`` into config.json's ``cell``: the power manager whose rails feed
the modem, switched on by the firmware over I2C before PWRKEY. ``check_modem`` refuses, naming
the file and the key: an unknown family, a UART the MCU cannot give a modem, GPIOs the MCU
lacks, a GPIO used twice or held by the profile's pins or sensors. The modem's GPIOs stay out
of ``BoardProfile.gpios``: provision refuses a ``--modem-*`` GPIO found there, and the
profile's own modem pins must pass it (``pmu_gpios`` gives the PMU's, which no flag may take).

``MODEMS`` and ``MODEM_UARTS`` live here, not in provision.py, because provision.py imports
boards.py, which imports this module; provision.py re-exports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boards.py imports this module: its types only for the checker
    from hardware.boards import Mcu, _Check

MODEMS = ("sim7080", "a76xx")  # the firmware's families: one firmware/lib/cellup_<family>.py each
# The UARTs a modem can have, per MCU: UART0 is the console (USB serial, the REPL, a serial
# board's link); an ESP32-C3 has no UART2
MODEM_UARTS = {"esp32": (1, 2), "esp32s3": (1, 2), "esp32c3": (1,)}
PMU_CHIPS = ("axp2101",)  # the power managers the firmware drives: one firmware/lib/pmu_<chip>.py each
_KEYS = {"family", "uart", "tx", "rx", "pwrkey", "pwrkey_active", "pmu"}
_PMU_KEYS = {"chip", "sda", "scl"}


def check_modem(ck: _Check, modem: object, mcu_name: str, mcu: Mcu, held: dict[int, str]) -> dict[str, Any] | None:
    """The profile's ``modem`` checked (``pmu`` None when absent), or None when it has none;
    ``held``: the GPIOs the profile's pins and sensors hold -> the key holding each."""
    if modem is None:
        return None
    if mcu_name not in MODEM_UARTS:
        raise ck.fail("modem", "is for a real board: a virtual board's modem is simulated (sen sim --cellular)")
    if not isinstance(modem, dict):
        raise ck.fail("modem", f"must be an object ({', '.join(sorted(_KEYS))}) or null")
    ck.keys(modem, _KEYS, _KEYS - {"pmu"}, "modem.")
    if modem["family"] not in MODEMS:
        raise ck.fail("modem.family", f"must be one of {', '.join(MODEMS)} (got {modem['family']!r})")
    uarts = MODEM_UARTS[mcu_name]
    if ck.integer(modem["uart"], "modem.uart", 0, 255) not in uarts:
        raise ck.fail("modem.uart", f"must be {' or '.join(map(str, uarts))} on {mcu_name} "
                      f"(UART0 is the console; got {modem['uart']})")
    ck.integer(modem["pwrkey_active"], "modem.pwrkey_active", 0, 1)
    taken = dict(held)  # and the modem's own, as they are checked

    for key in ("tx", "rx", "pwrkey"):
        ck.gpio(modem[key], f"modem.{key}", mcu, mcu.gpio, taken)
    pmu = modem.get("pmu")
    if pmu is not None:
        if not isinstance(pmu, dict):
            raise ck.fail("modem.pmu", f"must be an object ({', '.join(sorted(_PMU_KEYS))}) or null")
        ck.keys(pmu, _PMU_KEYS, _PMU_KEYS, "modem.pmu.")
        if pmu["chip"] not in PMU_CHIPS:
            raise ck.fail("modem.pmu.chip", f"must be one of {', '.join(PMU_CHIPS)} (the power managers "
                          f"the firmware drives; got {pmu['chip']!r})")
        for end in ("sda", "scl"):
            ck.gpio(pmu[end], f"modem.pmu.{end}", mcu, mcu.gpio, taken)
    return {key: modem.get(key) for key in sorted(_KEYS)}


def pmu_gpios(modem: dict[str, Any] | None) -> dict[int, str]:
    """The GPIOs of a checked ``modem``'s PMU bus -> its key: taken by the board, never a modem wire."""
    pmu = (modem or {}).get("pmu") or {}
    return {pmu[end]: f"modem.pmu.{end}" for end in ("sda", "scl") if end in pmu}
