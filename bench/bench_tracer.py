"""Cost of the C-level tracer: code with no shared access, and shared accesses.

(a) a loop over locals only, traced (with a sink) vs untraced: the ratio
    (target <= 10x);
(b) a loop of `t = c.value; c.value = t + 1` on a shared object, traced with a
    counting sink vs untraced: ns per recorded access;
(c) a loop calling a small function (call and return events), traced vs
    untraced.

Medians of several repetitions, all measured in this run.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from frontrun import _native

N = 200_000
REPS = 7


class Counter:
    def __init__(self) -> None:
        self.value = 0


def locals_loop() -> int:
    total = 0
    for i in range(N):
        x = i * 2
        total += x - i
    return total


def add(a: int, b: int) -> int:
    return a + b


def calls_loop() -> int:
    total = 0
    for i in range(N):
        total = add(total, i)
    return total


def shared_loop(c: Counter) -> None:
    for _ in range(N):
        t = c.value
        c.value = t + 1


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def paired(plain: Callable[[], object], traced: Callable[[], object]) -> tuple[float, float, float]:
    """Median untraced time, median traced time, median of per-pair ratios.

    Runs alternate so that load from other processes hits both sides alike.
    """
    a, b = [], []
    for _ in range(REPS):
        a.append(timed(plain))
        b.append(timed(traced))
    ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
    return statistics.median(a), statistics.median(b), ratio


def main() -> None:
    if not _native._tracer_supported():
        print("tracer unsupported on this interpreter; skipped")
        return
    v = sys.version_info
    print(f"CPython {v.major}.{v.minor}.{v.micro}, N={N}, median of {REPS} alternating runs")

    plain, traced, ratio = paired(locals_loop, lambda: _native._trace_count(locals_loop, []))
    print(
        f"(a) locals-only loop: untraced {plain * 1e3:.1f} ms, traced {traced * 1e3:.1f} ms, "
        f"ratio {ratio:.1f}x (target <= 10x)"
    )

    c = Counter()
    events = _native._trace_count(lambda: shared_loop(c), [c])
    plain, traced, ratio = paired(
        lambda: shared_loop(c), lambda: _native._trace_count(lambda: shared_loop(c), [c])
    )
    per_access = (traced - plain) / events * 1e9
    print(
        f"(b) shared counter loop: untraced {plain * 1e3:.1f} ms, traced {traced * 1e3:.1f} ms, "
        f"ratio {ratio:.1f}x, {events} accesses, {per_access:.0f} ns added per access"
    )

    plain, traced, ratio = paired(calls_loop, lambda: _native._trace_count(calls_loop, []))
    print(
        f"(c) function-call loop: untraced {plain * 1e3:.1f} ms, traced {traced * 1e3:.1f} ms, "
        f"ratio {ratio:.1f}x"
    )


if __name__ == "__main__":
    main()
