"""A private Mosquitto 2.x broker for the demo, the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.devstack.process import Service, find_program, port_open


class Mosquitto(Service):
    """A private Mosquitto 2.x broker with persistence in its data directory."""

    name = "mosquitto"

    def __init__(self, data_dir: Path, *, port: int | None = None, anonymous: bool = True,
                 extra_conf: Sequence[str] = (), die_with_parent: bool = False) -> None:
        """``anonymous=False`` refuses clients without an account; ``extra_conf`` lines are
        appended to the config (password_file, acl_file, a TLS listener...)."""
        super().__init__(data_dir, port=port, die_with_parent=die_with_parent)
        self.anonymous = anonymous
        self.extra_conf = list(extra_conf)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            # As root Mosquitto would switch to the 'mosquitto' user and lose its data dir.
            "user root\n"
            + "".join(f"{line}\n" for line in self.extra_conf)
        )
        return [find_program("mosquitto"), "-c", str(conf)]

    def _ready(self) -> bool:
        return port_open(self.port)
