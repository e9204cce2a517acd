"""The exceptions of the gateway package; :class:`GatewayError` is the root of all of them
(the tools' own kinds, such as ``InstallError`` or ``DevStackError``, subclass it where they live)."""


class GatewayError(Exception):
    """Root of every error raised by the gateway package."""


class OptionsError(GatewayError, ValueError):
    """An option has a bad value; the message names the option and the value."""


class RegistryError(GatewayError):
    """The device registry's SQLite file could not be opened or written."""


class TopicError(GatewayError, ValueError):
    """A topic that is not ``sen/v1/{site}/{device}/{kind}``; ``bad_name`` if only a name is."""

    def __init__(self, message: str, *, bad_name: bool = False) -> None:
        super().__init__(message)
        self.bad_name = bad_name


class AnchorMissing(GatewayError, ValueError):
    """An uptime-only reading reached the line encoder without its boot's clock anchor."""
