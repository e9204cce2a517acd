"""The simulated modems by name: ``sim7080`` (``hardware/modem_sim7080.py``) and ``a76xx``
(``hardware/modem_sim_a76xx.py``); a virtual board made cellular on one (``sen sim --cellular
[--modem a76xx]``), and one run by hand::

    python -m hardware.modem_sims --port 7080 [--modem a76xx] [--faults FILE]
"""

from __future__ import annotations

import logging
import time

from hardware.modem_sim import ModemSim
from hardware.modem_sim7080 import Sim7080
from hardware.modem_sim_a76xx import A76xx
from hardware.vboard import VirtualBoard

MODEMS: dict[str, type[ModemSim]] = {"sim7080": Sim7080, "a76xx": A76xx}


def attach(board: VirtualBoard, *, modem: str = "sim7080", reg_s: float = 3.0) -> ModemSim:
    """Make BOARD a cellular board on a simulated modem of its own: its config gets
    ``"transport": "cellular"`` and a ``cell`` for the modem's family and port; the modem
    watches the board's faults.json (``cell``, ``modem_reset``...). Call before ``start()``."""
    sim = MODEMS[modem](faults=board.flash_dir / "faults.json", reg_s=reg_s, name=board.device).start()
    board.config["transport"] = "cellular"
    # the simulator's 2 s ack timeout resends faster than a cell's round trip and the gateway's
    # ack pacing: its acks then never caught up (seen with sen sim's default); the firmware's 15 s
    board.config["ack_timeout_ms"] = max(int(board.config.get("ack_timeout_ms", 15000)), 15000)
    board.config["cell"] = {"modem": modem, "apn_preset": "viettel", "sim_port": sim.port, "reg_poll_ms": 500,
                            "backoff_ms": 500, "backoff_max_ms": 8000, "boot_ms": 5000}
    return sim


def main(argv: list[str] | None = None) -> int:
    """One simulated modem on 127.0.0.1:PORT until Ctrl-C."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m hardware.modem_sims", description=main.__doc__)
    p.add_argument("--port", type=int, default=7080)
    p.add_argument("--modem", choices=sorted(MODEMS), default="sim7080")
    p.add_argument("--faults", type=Path)
    p.add_argument("--reg-s", type=float, default=3.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sim = MODEMS[a.modem](port=a.port, faults=a.faults, reg_s=a.reg_s).start()
    print(f"simulated {a.modem} on 127.0.0.1:{sim.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
