"""Group-commit claims (ingest/claims.py) take exactly what one claim per run would take."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from ingest.errors import SpoolError
from ingest.ranges import SCHEMA, Run, claim
from ingest.spool import Spool


def _taken(db: sqlite3.Connection) -> set[tuple[str, int]]:
    return {(stream, seq) for stream, lo, hi in db.execute("SELECT stream, lo, hi FROM ranges")
            for seq in range(lo, hi + 1)}


def test_batched_claims_match_one_claim_per_run(tmp_path: Path) -> None:
    rng = random.Random(7)
    spool = Spool(tmp_path / "spool")
    plain = sqlite3.connect(":memory:", isolation_level=None)
    plain.executescript(SCHEMA)
    highest = {f"r/d{i}": 0 for i in range(4)}
    for commit in range(300):
        groups = []
        for _ in range(rng.randint(1, 6)):
            stream = rng.choice(sorted(highest))
            shape = rng.random()
            if shape < 0.6:  # continues the stream, or leaves a hole first
                first = highest[stream] + 1 + (rng.randint(1, 3) if rng.random() < 0.15 else 0)
                seqs = list(range(first, first + rng.randint(1, 10)))
            elif shape < 0.8:  # a redelivery, maybe with new ones added
                first = rng.randint(1, highest[stream] + 1)
                seqs = list(range(first, first + rng.randint(1, 12)))
            else:  # out of order, with repeats
                seqs = [rng.randint(1, highest[stream] + 5) for _ in range(rng.randint(1, 6))]
            highest[stream] = max(highest[stream], *seqs)
            groups.append([Run(stream=stream, seqs=tuple(seqs), lines=tuple(f"m x={s}i {s}" for s in seqs))])
        expected = []
        for group in groups:
            fresh = claim(plain, group[0].stream, group[0].seqs, 1)
            expected.append((sum(fresh), len(fresh) - sum(fresh)))
        results = spool.commit_many(groups)
        assert [(r.added, r.duplicates) for r in results] == expected, commit
        if commit == 150:  # another connection writes the file: what the spool remembered is stale
            other = sqlite3.connect(spool.path)
            other.execute("INSERT INTO ranges VALUES ('r/d0', 100000, 100001, 1)")
            other.commit()
            other.close()
            plain.execute("INSERT INTO ranges VALUES ('r/d0', 100000, 100001, 1)")
    db = sqlite3.connect(spool.path)
    assert _taken(db) == _taken(plain)
    lines = db.execute("SELECT coalesce(sum(n), 0) FROM lines").fetchone()[0]
    assert lines == len(_taken(plain)) - 2  # every taken number once, but the two another wrote
    db.close()
    spool.close()


def test_a_failed_commit_forgets_what_it_claimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.commit([Run(stream="r/a", seqs=(1, 2), lines=("m x=1i 1", "m x=2i 2"))]).added == 2
    bad = Run(stream="r/a", seqs=(3, 4), lines=("m x=3i 3",))  # a line short: refused
    try:
        spool.commit([Run(stream="r/b", seqs=(1,), lines=("m x=1i 1",)), bad])
    except SpoolError:
        pass
    again = spool.commit([Run(stream="r/b", seqs=(1,), lines=("m x=1i 1",)),
                          Run(stream="r/a", seqs=(3,), lines=("m x=3i 3",))])
    assert (again.added, again.duplicates) == (2, 0)
    spool.close()


def test_a_commit_larger_than_a_statement(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    groups = [[Run(stream=f"r/d{i}", seqs=(1, 2), lines=(f"m x={i}i 1", f"m x={i}i 2"))] for i in range(4500)]
    assert sum(r.added for r in spool.commit_many(groups)) == 9000
    again = groups[:10] + [[Run(stream=f"r/d{i}", seqs=(3,), lines=(f"m x={i}i 3",))] for i in range(4500)]
    results = spool.commit_many(again)
    assert [(r.added, r.duplicates) for r in results[:10]] == [(0, 2)] * 10
    assert sum(r.added for r in results[10:]) == 4500
    batch = spool.oldest(100_000)
    assert batch is not None and len(batch) == 13_500 and batch.lines[:2] == ("m x=0i 1", "m x=0i 2")
    assert batch.ids == tuple(sorted(batch.ids)) and batch.lines[-1] == "m x=4499i 3"
    spool.delete(batch.ids)
    assert spool.depth() == 0 and spool.pending == 0 and spool.oldest(10) is None
    spool.close()
