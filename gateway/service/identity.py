"""Who a reading belongs to (DESIGN.md, Identity).

A device is (site, device): the same name at two sites is two devices. A boot is (site, device,
fid, boot): ``fid`` is the flash id a board draws when its flash holds no boot counter, so a
re-flashed board that counts from boot 1 again never meets its old boots. A reading is (boot
key, seq). Every key the gateway keeps — spool streams, anchors, boots, acks — is built here.
"""

from __future__ import annotations

from typing import NamedTuple

BootTuple = tuple[str, str, int, int]  # a boot key as a plain tuple (site, device, fid, boot); a BootKey is one


class BootKey(NamedTuple):
    site: str
    device: str
    fid: int  # 0: firmware that sends no fid
    boot: int

    @property
    def stream(self) -> str:
        """The spool's dedup stream of this boot's readings: a reading is (stream, seq)."""
        return f"r/{self.site}/{self.device}/{self.fid}/{self.boot}"

    def __str__(self) -> str:
        fid = f" flash {self.fid:08x}" if self.fid else ""
        return f"{self.site}/{self.device}{fid} boot {self.boot}"
