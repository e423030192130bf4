"""Per-shared-access cost of one long DPOR execution through the Python
driver, against execution length: it should stay flat.

Run after `make dev`: `.venv/bin/python crates/frontrun-engine/benches/long_executions.py`
(prints medians of 3 explorations per row).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import frontrun


class Cell:
    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.z = 0


def writer(n: int, attr: str) -> Callable[[Cell], None]:
    def write(c: Cell) -> None:
        for i in range(n):
            setattr(c, attr, i)

    return write


def per_access(n: int, attrs: str) -> float:
    threads = [writer(n, a) for a in attrs]
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = frontrun.explore(
            Cell, threads, lambda s: True, reproduce_on_failure=0, max_attempts=1, strategy="dpor"
        )
        samples.append((time.perf_counter() - t0) / (n * len(attrs) * r.executions_explored))
    return statistics.median(samples)


def main() -> None:
    rows = [("x", "1 thread"), ("xx", "2 threads, same attr"), ("xy", "2 threads, own attr")]
    rows.append(("xyz", "3 threads, own attr"))
    for n in (1_000, 5_000, 10_000):
        for attrs, kind in rows:
            us = per_access(n, attrs) * 1e6
            print(f"{n:>6} writes x {kind:<22} {us:7.2f} us/access", flush=True)


if __name__ == "__main__":
    main()
