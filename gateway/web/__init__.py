"""The web page: a device table and charts, served by ``sen web`` or inside the gateway
(``--web PORT``); its files are in ``static/``."""
