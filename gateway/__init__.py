"""Sen gateway: MQTT input, decoding and validation, time stamping, hand-off to ingest.

:class:`GatewayError` is the root of this package's exceptions. The service entry point is
:func:`gateway.service.run`; options are :class:`gateway.options.GatewayOptions`.
"""

from gateway.errors import GatewayError, OptionsError

__all__ = ["GatewayError", "OptionsError"]
