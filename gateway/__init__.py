"""Sen gateway. Rooms: ``service`` (what the Pi runs), ``cli`` (the ``sen`` command line),
``ops`` (operator tools), ``web`` (the web page), ``demo`` and ``devstack`` (private servers
for the demo, the tests and the benchmarks).

:class:`GatewayError` is the root of every exception this package raises.
"""

from gateway.errors import GatewayError, OptionsError

__all__ = ["GatewayError", "OptionsError"]
