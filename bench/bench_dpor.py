"""Exploration throughput: executions per second, per-execution time, and the
ratio to running the same threads untraced (sequentially, in this process).

Targets (SPEC "Figures to beat"): <= 0.1 ms per execution on the 2-thread
counter, <= 10x overhead for code with no shared access, <= 3 us per shared
access, >= 2,000 executions/s on 3 threads x 10 locked increments.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import frontrun

REPEATS = 5


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        t = self.value
        self.value = t + 1


class LockedCounter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def inc(self) -> None:
        with self.lock:
            t = self.value
            self.value = t + 1


def explore(*args: Any, **kw: Any) -> frontrun.ExploreResult:
    """Plain DPOR, as SPEC's figures are stated (the default is iterative
    preemption bounding, which repeats interleavings to find bugs sooner)."""
    kw.setdefault("strategy", "dpor")
    return frontrun.explore(*args, **kw)


def inc(c: Any) -> None:
    c.inc()


def untraced(setup: Callable[[], Any], threads: list[Callable[[Any], Any]]) -> float:
    """Median seconds of one plain execution: setup, each thread, in turn."""
    n = 2000
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(n):
            s = setup()
            for f in threads:
                f(s)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def explored(
    setup: Callable[[], Any], threads: list[Callable[[Any], Any]], repeats: int = REPEATS, **kw: Any
) -> tuple[float, frontrun.ExploreResult]:
    """Median seconds per execution of an exploration, and its last result."""
    samples = []
    r = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = explore(setup, threads, lambda s: True, reproduce_on_failure=0, **kw)
        samples.append((time.perf_counter() - t0) / max(r.executions_explored, 1))
    assert r is not None
    return statistics.median(samples), r


def row(name: str, per_exec: float, r: frontrun.ExploreResult, base: float | None) -> None:
    ratio = f"{per_exec / base:8.1f}x untraced" if base else ""
    verdict = {True: "holds", False: "fails", None: "inconclusive"}[r.property_holds]
    print(
        f"{name:<38} {r.executions_explored:>7} execs  {1 / per_exec:>9.0f} execs/s  "
        f"{per_exec * 1e3:8.3f} ms/exec  {ratio}  [{verdict}{', exhausted' if r.exhausted else ''}]",
        flush=True,
    )


def philosophers(n: int, ordered: bool) -> tuple[Callable[[], Any], list[Callable[[Any], Any]]]:
    class Table:
        def __init__(self) -> None:
            self.forks = [threading.Lock() for _ in range(n)]

    def seat(i: int) -> Callable[[Any], None]:
        def eat(t: Any) -> None:
            a, b = i, (i + 1) % n
            if ordered:
                a, b = min(a, b), max(a, b)
            with t.forks[a], t.forks[b]:
                pass

        return eat

    return Table, [seat(i) for i in range(n)]


class Cell:
    def __init__(self) -> None:
        self.x = 0


LOOP = 200_000


def locals_only(c: Cell) -> None:
    total = 0
    for i in range(LOOP):
        total += i * 2 - 1
    del total


ACCESSES = 2_000


def shared_writes(c: Cell) -> None:
    for i in range(ACCESSES):
        c.x = i


def verdict_mark(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def spec_rows() -> None:
    """One line per SPEC "Figures to beat" row this driver is responsible for."""
    print("-- SPEC targets (medians; a warm-up call first) --", flush=True)
    explore(Counter, [inc, inc], lambda s: True, reproduce_on_failure=0)
    calls = 300
    samples = []
    execs = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        r = explore(
            Counter, [inc, inc], lambda s: True, reproduce_on_failure=0, stop_on_first=False
        )
        samples.append(time.perf_counter() - t0)
        execs = r.executions_explored
    per_call = statistics.median(samples)
    per_exec = per_call / execs
    print(
        f"DPOR lost-update counter, 2 threads: {per_call * 1e3:.3f} ms per explore call "
        f"/ {execs} executions = {per_exec * 1e3:.3f} ms per execution "
        f"({1 / per_exec:.0f} executions/s); target <= 0.1 ms: {verdict_mark(per_exec <= 1e-4)}",
        flush=True,
    )
    counts = []
    for n in (2, 3, 4):
        r = explore(Counter, [inc] * n, lambda s: True, reproduce_on_failure=0)
        counts.append(r.executions_explored)
    print(
        f"exhaustive executions, counter with 2/3/4 threads: {'/'.join(map(str, counts))}; "
        f"target 4/36/576: {verdict_mark(counts == [4, 36, 576])}",
        flush=True,
    )
    unbounded = explore(LockedCounter, [inc] * 4, lambda s: True).executions_explored
    bounded = explore(
        LockedCounter, [inc] * 4, lambda s: True, preemption_bound=2
    ).executions_explored
    print(
        f"locked counter, 4 threads: {unbounded} unbounded, {bounded} with preemption bound 2; "
        f"target 24 and bounded <= unbounded: {verdict_mark(unbounded == 24 and bounded <= unbounded)}",
        flush=True,
    )
    base = statistics.median(_time(lambda: locals_only(Cell())) for _ in range(REPEATS))
    per, _ = explored(Cell, [locals_only])
    ratio = per / base
    print(
        f"no shared access ({LOOP}-iteration loop over locals): traced {per * 1e3:.1f} ms vs "
        f"untraced {base * 1e3:.1f} ms = {ratio:.1f}x; target <= 10x: {verdict_mark(ratio <= 10)}",
        flush=True,
    )
    base = statistics.median(_time(lambda: shared_writes(Cell())) for _ in range(REPEATS))
    per, _ = explored(Cell, [shared_writes], strategy="random", max_attempts=1, repeats=15)
    access = (per - base) / ACCESSES
    print(
        f"one shared access as a scheduling point: {access * 1e6:.2f} us "
        f"({ACCESSES} writes, 1 thread, over untraced); target <= 3 us: {verdict_mark(access <= 3e-6)}",
        flush=True,
    )
    print(flush=True)


def main() -> None:
    spec_rows()
    print("-- details (median of 5 explore calls each, per execution) --", flush=True)
    for n in (2, 3, 4):
        per, r = explored(Counter, [inc] * n, stop_on_first=False)
        row(f"lost-update counter, {n} threads", per, r, untraced(Counter, [inc] * n))
    # Steady-state cost of one execution: many executions in one call.
    per, r = explored(Counter, [inc] * 2, strategy="random", max_attempts=2000, seed=1)
    row("counter, 2 threads, 2000 random execs", per, r, untraced(Counter, [inc] * 2))
    for n in (2, 3, 4):
        per, r = explored(LockedCounter, [inc] * n)
        row(f"locked counter, {n} threads", per, r, untraced(LockedCounter, [inc] * n))

    def ten(c: Any) -> None:
        for _ in range(10):
            c.inc()

    per, r = explored(LockedCounter, [ten] * 3, repeats=1, total_timeout=20.0)
    row("3 threads x 10 locked incs (20 s cap)", per, r, untraced(LockedCounter, [ten] * 3))
    print(
        f"  3 x 10 locked incs: {1 / per:.0f} executions/s, verdict "
        f"{'inconclusive' if r.property_holds is None else r.property_holds}; target >= 2,000/s "
        f"and inconclusive: {verdict_mark(1 / per >= 2000 and r.property_holds is None)}",
        flush=True,
    )

    for n in (2, 3, 4):
        for ordered in (False, True):
            setup, threads = philosophers(n, ordered)
            per, r = explored(setup, threads, stop_on_first=False)
            kind = "ordered" if ordered else "unordered"
            row(f"dining philosophers, {n} seats, {kind}", per, r, untraced(setup, threads))

    base = statistics.median(_time(lambda: locals_only(Cell())) for _ in range(REPEATS))
    per, r = explored(Cell, [locals_only])
    row(f"loop over locals ({LOOP} iterations)", per, r, base)

    base = statistics.median(_time(lambda: shared_writes(Cell())) for _ in range(REPEATS))
    for strategy in ("dpor", "random"):
        per, r = explored(Cell, [shared_writes], strategy=strategy, max_attempts=1)
        row(f"{ACCESSES} shared writes, 1 thread, {strategy}", per, r, base)
        print(
            f"  per shared access ({strategy}): {(per - base) / ACCESSES * 1e6:.2f} us over untraced",
            flush=True,
        )


def _time(f: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
