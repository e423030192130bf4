"""Explaining a long failing trace: the issue-11 probe.

One thread does N shared increments and then raises, another reads the
counter. The explanation (trace analysis and rendering) must grow near
linearly with the trace: a 64,000-event trace explained in under a second.
The failing exploration runs two executions (the failing one ran the
threads one after another, so the reverse order is run to classify it) and
explains; the passing one runs one execution and explains nothing. The
explanation's cost is estimated as failing - 2 x passing.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import frontrun

REPEATS = 3


class Counter:
    def __init__(self) -> None:
        self.value = 0


def make_worker(n: int, fail: bool) -> Any:
    def worker(c: Counter) -> None:
        for _ in range(n):
            c.value += 1
        if fail:
            raise RuntimeError("done")

    return worker


def reader(c: Counter) -> None:
    _ = c.value


def timed(n: int, fail: bool) -> float:
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        r = frontrun.explore(
            Counter,
            [make_worker(n, fail), reader],
            lambda c: True,
            max_executions=1,
            reproduce_on_failure=0,
            timeout_per_run=60.0,
        )
        samples.append(time.perf_counter() - t0)
        assert (r.property_holds is False) == fail, r.explanation
    return statistics.median(samples)


def main() -> None:
    for n in (8_000, 32_000):
        failing = timed(n, True)
        passing = timed(n, False)
        print(
            f"{2 * n:>6} events: failing exploration {failing:.3f} s, passing {passing:.3f} s, "
            f"explanation ~{max(failing - 2 * passing, 0.0):.3f} s (median of {REPEATS})"
        )


if __name__ == "__main__":
    main()
