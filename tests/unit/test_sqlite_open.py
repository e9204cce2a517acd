"""Opening Sen's SQLite files (ingest.sqlite.open_durable, the registry's open_registry) from
several processes at once, as a gateway's workers open the registry: a new file's tables are made
once (in one transaction) and every opener gets them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.service.registry_schema import open_registry
from ingest.spool_schema import open_spool

Opener = Callable[[Path], sqlite3.Connection]
_OPENERS = {"spool": open_spool, "registry": open_registry}


def _open_together(opener: Opener, path: Path, n: int) -> list[sqlite3.Connection | BaseException]:
    """N threads (each its own connection; SQLite works without the interpreter lock) open PATH at once."""
    start = threading.Barrier(n)
    results: list[sqlite3.Connection | BaseException] = [RuntimeError("did not run")] * n

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = opener(path)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            results[i] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("kind", sorted(_OPENERS))
def test_a_new_file_opened_by_several_at_once_is_made_once_and_opened_by_all(tmp_path: Path, kind: str) -> None:
    opener = _OPENERS[kind]
    for attempt in range(15):  # the race is between a few statements: try it on several new files
        path = tmp_path / f"{attempt}.sqlite3"
        results = _open_together(opener, path, 4)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{kind} file {attempt}: {errors}"
        tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
        for db in results:
            assert isinstance(db, sqlite3.Connection)
            assert {row[0] for row in db.execute("SELECT name FROM sqlite_master")} == tables
            db.close()
