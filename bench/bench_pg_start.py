"""Throwaway PostgreSQL: time to a server accepting connections, initdb vs cached template.

Also the cost of one fresh database. Run: `python bench/run.py bench_pg_start`.
"""

from __future__ import annotations

import os
import statistics
import time

from frontrun.testing import TEMPLATE_ENV_VAR, postgres_server

RUNS = 3


def _start_stop_seconds(template: bool) -> tuple[float, float]:
    """Median seconds to start (until ready) and to stop, over RUNS runs."""
    old = os.environ.get(TEMPLATE_ENV_VAR)
    os.environ[TEMPLATE_ENV_VAR] = "1" if template else "0"
    starts, stops = [], []
    try:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            with postgres_server(use_env=False):
                t1 = time.perf_counter()
            starts.append(t1 - t0)
            stops.append(time.perf_counter() - t1)
    finally:
        if old is None:
            os.environ.pop(TEMPLATE_ENV_VAR, None)
        else:
            os.environ[TEMPLATE_ENV_VAR] = old
    return statistics.median(starts), statistics.median(stops)


def main() -> None:
    _start_stop_seconds(template=True)  # warm: creates the cached template once
    cold, cold_stop = _start_stop_seconds(template=False)
    warm, warm_stop = _start_stop_seconds(template=True)
    print(f"start with initdb        : {cold * 1000:7.0f} ms (stop {cold_stop * 1000:.0f} ms)")
    print(f"start from template copy : {warm * 1000:7.0f} ms (stop {warm_stop * 1000:.0f} ms)")
    print(f"template speed-up        : {cold / warm:7.1f}x")
    with postgres_server(use_env=False) as pg:
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            with pg.fresh_database("bench"):
                times.append(time.perf_counter() - t0)
        print(
            f"fresh database (create+drop), median of 10: {statistics.median(times) * 1000:.0f} ms"
        )
