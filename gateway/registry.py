"""The device registry: per-boot clock anchors, durable in ``spool_dir/registry.sqlite3``.

The first time the gateway sees (device, boot) it stores ``anchor = receive_time - up``;
later messages of that boot (redeliveries included, and after a gateway restart) get the
same anchor, so an uptime-only reading always gets the same timestamp.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from ingest.sqlite import open_durable

from gateway.errors import RegistryError

_LOGGER = logging.getLogger(__name__)

REGISTRY_FILE = "registry.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    device TEXT NOT NULL,
    boot INTEGER NOT NULL,
    anchor_ms INTEGER NOT NULL,
    PRIMARY KEY (device, boot)
) WITHOUT ROWID;
"""


class Registry:
    def __init__(self, directory: Path) -> None:
        self.path = directory / REGISTRY_FILE
        self._lock = threading.Lock()
        try:
            self._db = open_durable(self.path, _SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise RegistryError(f"cannot open registry {self.path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def anchor(self, device: str, boot: int, *, candidate_ms: int) -> int:
        """The stored anchor of (device, boot), storing ``candidate_ms`` if there is none."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO anchors (device, boot, anchor_ms) VALUES (?, ?, ?)",
                    (device, boot, candidate_ms))
                created = cur.rowcount == 1
                row = self._db.execute(
                    "SELECT anchor_ms FROM anchors WHERE device = ? AND boot = ?",
                    (device, boot)).fetchone()
            except sqlite3.Error as err:
                raise RegistryError(f"registry {self.path}: {err}") from err
        if created:
            _LOGGER.info("device %s boot %s: clock anchor %s", device, boot, candidate_ms)
        return int(row[0])
