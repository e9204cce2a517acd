# gateway/service/fastpath.c: what it gives, for the type checker.
from collections.abc import Callable, Sequence

from gateway.service.readings import Decoded, Reading

def setup(reading: type[Reading], decoded: type[Decoded], /) -> None: ...
def readings(raw: list[object], envelope_up: int | None, boot: int, /) -> Decoded | None: ...
def lines(readings: tuple[Reading, ...], fields: Sequence[str], head: Callable[[str, str, str, str | None], str],
          site: str, device: str, board: str, anchor: int | None,
          /) -> tuple[list[str], int | None, dict[str, int]] | None: ...
