"""Both substrates side by side, in one run: explored threads on OS worker
threads ("threads") or as greenlets on the exploring thread ("coroutines").

Each figure is the median of 5 explore calls with the spread (min-max)
across them, and its ratio to the same code run untraced.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import frontrun

RUNS = 5
SUBSTRATES = ("threads", "coroutines")


class Counter:
    def __init__(self) -> None:
        self.value = 0


def inc(c: Counter) -> None:
    v = c.value
    c.value = v + 1


class Locked:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0


def ten_locked(s: Locked) -> None:
    for _ in range(10):
        with s.lock:
            s.value += 1


class Cell:
    def __init__(self) -> None:
        self.value = 0


def locals_only(c: Cell) -> None:
    total = 0
    for i in range(20_000):
        total += i * 2
    c.value = total


def untraced(setup: Callable[[], Any], threads: list[Callable[[Any], Any]], n: int) -> float:
    """Median seconds of one plain run of the threads, one after another."""
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        for _ in range(n):
            s = setup()
            for f in threads:
                f(s)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def per_execution(
    setup: Callable[[], Any], threads: list[Callable[[Any], Any]], **kw: Any
) -> tuple[list[float], frontrun.ExploreResult]:
    """Seconds per execution of each of `RUNS` explore calls."""
    samples = []
    r = None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        r = frontrun.explore(setup, threads, lambda s: True, reproduce_on_failure=0, **kw)
        samples.append((time.perf_counter() - t0) / max(r.executions_explored, 1))
    assert r is not None
    return samples, r


def row(
    name: str, setup: Callable[[], Any], threads: list[Callable[[Any], Any]], **kw: Any
) -> None:
    base = untraced(setup, threads, 200)
    print(f"{name} (untraced {base * 1e6:.1f} us)", flush=True)
    for sub in SUBSTRATES:
        samples, r = per_execution(setup, threads, substrate=sub, **kw)
        med = statistics.median(samples)
        print(
            f"  {sub:<11} {r.executions_explored:>6} execs  {1 / med:>9.0f} execs/s  "
            f"{med * 1e6:9.1f} us/exec (spread {min(samples) * 1e6:.1f}-{max(samples) * 1e6:.1f})"
            f"  {med / base:7.1f}x untraced  [ran on {r.substrate}]",
            flush=True,
        )


def main() -> None:
    row(
        "2-thread lost-update counter, 2000 random executions",
        Counter,
        [inc, inc],
        strategy="random",
        max_attempts=2000,
        seed=1,
    )
    row("2-thread lost-update counter, DPOR", Counter, [inc, inc], strategy="dpor")
    row(
        "3 threads x 10 locked increments, DPOR (5 s cap)",
        Locked,
        [ten_locked] * 3,
        strategy="dpor",
        total_timeout=5.0,
    )
    row("no shared access (20,000-iteration loop), 1 thread", Cell, [locals_only])


if __name__ == "__main__":
    main()
