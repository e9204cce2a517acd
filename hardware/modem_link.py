"""The simulated modem's own MQTT session (``hardware/modem_sim.py``): what ``AT+SMCONN``
(``AT+CMQTTCONNECT`` on an A76xx) opens.

A real paho session to the broker the board configured (``conf``: URL, CLIENTID, KEEPTIME,
USERNAME, PASSWORD as ``AT+SMCONF`` writes them; WILLTOPIC, WILLMSG, WILLQOS from an A76xx);
messages on its subscriptions and its loss are handed to the modem, which turns them into its
URCs (``+SMSUB:`` and ``+SMSTATE: 0`` on a SIM7080G). A lost cell sends no DISCONNECT:
:meth:`BrokerLink.close` just closes the socket (the broker then publishes the will, if any);
``AT+SMDISC`` (``AT+CMQTTDISC``) closes it cleanly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

_CONNECT_S = 10.0
_PUBACK_S = 10.0


class BrokerLink:
    def __init__(self, conf: dict[str, str], on_message: Callable[[BrokerLink, str, bytes], None],
                 on_lost: Callable[[BrokerLink], None]) -> None:
        url = conf.get("URL", "").split(",")
        self.host = url[0].strip('"')
        self.port = int(url[1].strip('"')) if len(url) > 1 else 1883
        self.keepalive = int(conf.get("KEEPTIME", "60"))
        # No reconnecting on its own: the modem makes a new link for each SMCONN. A link closed
        # by a fault that reconnected by itself would take the new link's client id (the
        # broker drops the older connection of an id), and the two would evict each other.
        self._m = paho.Client(CallbackAPIVersion.VERSION2, client_id=conf.get("CLIENTID", '"sim7080"').strip('"'),
                              clean_session=True, reconnect_on_failure=False)
        user = conf.get("USERNAME", '""').strip('"')
        if user:
            self._m.username_pw_set(user, conf.get("PASSWORD", '""').strip('"'))
        if conf.get("WILLTOPIC"):  # the A76xx's AT+CMQTTWILLTOPIC / WILLMSG (data mode: any bytes)
            self._m.will_set(conf["WILLTOPIC"], conf.get("WILLMSG", ""), int(conf.get("WILLQOS", "0")))
        self._up = threading.Event()
        self._m.on_connect = self._connected
        self._m.on_message = lambda c, u, msg: on_message(self, msg.topic, bytes(msg.payload))
        self._m.on_disconnect = lambda c, u, f, rc, p: on_lost(self)

    def _connected(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self._up.set()

    def open(self) -> bool:
        """Connect; True once the broker's CONNACK accepted the session (within 10 s)."""
        try:
            self._m.connect(self.host, self.port, self.keepalive)
        except OSError:
            return False
        self._m.loop_start()
        if not self._up.wait(_CONNECT_S):
            self._m.loop_stop()
            return False
        return True

    def subscribe(self, topic: str) -> bool:
        return self._m.subscribe(topic, 1)[0] == paho.MQTT_ERR_SUCCESS

    def publish(self, topic: str, data: bytes, qos: int, retain: bool) -> bool:
        """Publish; True once the broker's PUBACK came (QoS1) or the bytes went (QoS0)."""
        info = self._m.publish(topic, data, qos, retain)
        try:
            info.wait_for_publish(_PUBACK_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def close(self, clean: bool = False) -> None:
        """Closed on a thread of its own: paho's thread may be waiting for the modem's lock."""
        threading.Thread(target=self._close, args=(clean,), daemon=True).start()

    def _close(self, clean: bool) -> None:
        if clean:
            self._m.disconnect()
        else:
            sock = self._m.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self._m.loop_stop()
