"""The gateway service, what a Raspberry Pi runs: MQTT and serial inputs, decoding and
validation, the device registry, end-to-end acks, hand-off to ``ingest``.

Entry point: :func:`gateway.service.main.run` with :class:`gateway.service.options.GatewayOptions`
(built by :func:`gateway.service.config.load`). Nothing here imports the command line, the
operator tools, the simulator or the dev servers; the web page is loaded only when configured.
"""
