"""The exceptions of the gateway package; :class:`GatewayError` is the root."""


class GatewayError(Exception):
    """Root of every error raised by the gateway package."""


class OptionsError(GatewayError, ValueError):
    """An option has a bad value; the message names the option and the value."""


class RegistryError(GatewayError):
    """The device registry's SQLite file could not be opened or written."""
