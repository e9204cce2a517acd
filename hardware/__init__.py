"""Sen hardware: board profiles, the board simulator, flashing and hardware-in-the-loop tools.

Every error this package raises is a :class:`~hardware.errors.HardwareError`.
"""

from hardware.errors import (
    BoardError,
    FaultPlanError,
    FlashError,
    HardwareError,
    ProvisionError,
    SimError,
    VirtualBoardError,
)

__all__ = [
    "BoardError",
    "FaultPlanError",
    "FlashError",
    "HardwareError",
    "ProvisionError",
    "SimError",
    "VirtualBoardError",
]
