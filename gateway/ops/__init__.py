"""Operator tools around the service: the systemd install, broker accounts and TLS, the device
table (``sen status``) and the live tail (``sen tail``)."""
