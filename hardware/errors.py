"""The exceptions of the hardware package; :class:`HardwareError` is the root.

Catch :class:`HardwareError` for any of them. Each subclass also keeps the built-in base it
had before the package had one root (``ValueError`` or ``RuntimeError``), so code that caught
that still does. The modules that raise them re-export them (``from hardware.sim import
SimError`` keeps working).
"""


class HardwareError(Exception):
    """Root of every error raised by the hardware package."""


class BoardError(HardwareError, ValueError):
    """A board profile that cannot be used; the message names the file and the key."""


class FaultPlanError(HardwareError, ValueError):
    """A fault plan that cannot run; the message names the file and the step."""


class FlashError(HardwareError, RuntimeError):
    """A flash or deploy step cannot run or failed; the message says what to do."""


class ProvisionError(HardwareError, ValueError):
    """A config that would not work; the message names the key."""


class SimError(HardwareError, RuntimeError):
    """The simulator cannot run with the given options."""


class VirtualBoardError(HardwareError, RuntimeError):
    """A virtual board was asked for what it cannot do: a serial fault without a serial link,
    a network fault without a fault proxy, an unknown sensor fault."""
