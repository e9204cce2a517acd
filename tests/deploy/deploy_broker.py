"""A real Mosquitto running the configuration `sen broker conf` wrote, included the way Debian's
``/etc/mosquitto/mosquitto.conf`` includes it (``include_dir``), with Debian's persistence on."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.cli import main
from gateway.devstack import Service, find_program, free_port, port_open
from gateway.ops.broker_accounts import BrokerDir


class GeneratedBroker(Service):
    """Mosquitto with ``DIR/sen.conf`` in its ``conf.d``; ``port`` is the listener to wait for."""

    name = "mosquitto"

    def __init__(self, data_dir: Path, sen_conf: Path, *, port: int, user: str = "root") -> None:
        """``user``: the account Mosquitto switches to when started as root (Debian's: mosquitto)."""
        super().__init__(data_dir, port=port)
        self.sen_conf = sen_conf
        self.user = user

    def _command(self) -> list[str]:
        conf_d = self.data_dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        shutil.copyfile(self.sen_conf, conf_d / "sen.conf")
        main_conf = self.data_dir / "mosquitto.conf"
        # What Debian's mosquitto.conf says, with this test's paths (and by default no user switch).
        main_conf.write_text(
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            "autosave_interval 1\n"
            "log_dest stdout\nlog_type all\n"
            f"user {self.user}\n"
            f"include_dir {conf_d}\n")
        return [find_program("mosquitto"), "-c", str(main_conf)]

    def _ready(self) -> bool:
        return port_open(self.port)


def make_broker_dir(base: Path, *, devices: list[tuple[str, str]], tls: bool) -> tuple[BrokerDir, dict[str, str]]:
    """Accounts (the gateway's and ``devices``' as (site, device)) and, with ``tls``, a CA and
    server certificate for 127.0.0.1 and localhost, made through the command line."""
    broker_dir = base / "broker"
    assert main(["broker", "add-gateway", "--dir", str(broker_dir)]) == 0
    for site, device in devices:
        assert main(["broker", "add-device", "--dir", str(broker_dir), "--site", site, "--device", device]) == 0
    if tls:
        assert main(["broker", "tls", "--out", str(broker_dir / "tls"), "--host", "127.0.0.1",
                     "--host", "localhost"]) == 0
    store = BrokerDir(broker_dir)
    return store, {a.user: store.secret_path(a.user).read_text().strip() for a in store.accounts()}


def ports() -> tuple[int, int]:
    plain = free_port()
    while (tls := free_port()) == plain:
        pass
    return plain, tls
