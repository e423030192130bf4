"""frontrun's SQL model against the real PostgreSQL (issue 9): for random
scripts of 2-3 transactions, the outcomes of every interleaving run on the
server must equal the outcomes frontrun.explore finds: no outcome missed,
none invented.

A script whose search frontrun itself calls no proof (verdict ``None``,
with its reason) may miss outcomes; it may never invent one. Such scripts
are counted and listed apart from the exact ones, and their number is
bounded (see ``MAX_UNPROVED``): a ``None`` explains a gap, it is not a way
to hide one.

Environment: ``FRONTRUN_SQL_DIFF_N`` scripts (default 300) from seed
``FRONTRUN_SQL_DIFF_SEED`` (default 1), each with at most
``FRONTRUN_SQL_DIFF_MAX`` interleavings (default 600; the issue allows up to
about 2,000, which the on-demand runs use).

Scripts 142, 210, 212, 239 and 251 of seed 1 (at 300 scripts) were once
proved by plain DPOR while the server reached more outcomes: the race search
hid the race of two row locks behind a conflict of their unique checks
(``tests/test_sql_shapes.py`` keeps them)."""

from __future__ import annotations

import os
import random
import time

import pytest

import _sql_diff as d

# A verdict of None that misses outcomes is tolerated for at most this
# fraction of the scripts (today: a lock probe undid a waiting statement,
# see DbSession.check_undone).
MAX_UNPROVED = 0.02


# 300 scripts took 172 s at load 1-3 on 2 cores, and 1066 s at load 16;
# allow for a loaded machine.
@pytest.mark.timeout(3600)
def test_explore_finds_exactly_the_servers_outcomes(pg_dsn: str) -> None:
    n = int(os.environ.get("FRONTRUN_SQL_DIFF_N", "300"))
    cap = int(os.environ.get("FRONTRUN_SQL_DIFF_MAX", "600"))
    rng = random.Random(int(os.environ.get("FRONTRUN_SQL_DIFF_SEED", "1")))
    reset = d.prepare(pg_dsn)
    brute = d.BruteForce(pg_dsn, reset)
    stats = d.Stats()
    start = time.monotonic()
    try:
        for i in range(n):
            script = d.generate(rng, cap)
            found = stats.compare(i, script, brute, pg_dsn, reset)
            if found is not None:
                print(found, flush=True)
            if (i + 1) % 50 == 0:
                print(f"{i + 1} scripts, {len(stats.wrong)} differ", flush=True)
    finally:
        brute.close()
        reset.close()
    print(f"\n{stats.summary()} in {time.monotonic() - start:.0f}s")
    print("\n".join(stats.unproved))
    assert not stats.wrong, f"{len(stats.wrong)} of {n} scripts differ; first:\n{stats.wrong[0]}"
    assert len(stats.unproved) <= MAX_UNPROVED * n, "\n".join(stats.unproved)
