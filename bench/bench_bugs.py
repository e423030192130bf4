"""The bug suite (`tests/_bug_suite.py`) under each strategy, side by side:
bugs found, median executions to the first bug, false alarms.

Budget per program: 2,000 executions or 10 s (random and PCT: 2,000
attempts). Targets for the default strategy: every bug found, a median no
worse than the best single strategy's, and no false alarm for any strategy.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import time
from typing import Any

import frontrun

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from _bug_suite import SUITE, Program

STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    ("default (mixed)", {}),
    ("iterative", {"strategy": "iterative"}),
    ("portfolio", {"strategy": "portfolio"}),
    ("dpor", {"strategy": "dpor"}),
    ("dpor, bound 2", {"strategy": "dpor", "preemption_bound": 2}),
    ("random", {"strategy": "random", "max_attempts": 2000, "seed": 1}),
    ("pct", {"strategy": "pct", "max_attempts": 2000, "seed": 1}),
]


def run(program: Program, options: dict[str, Any]) -> frontrun.ExploreResult:
    return frontrun.explore(
        program.setup,
        program.threads,
        program.invariant,
        max_executions=2000,
        total_timeout=10.0,
        reproduce_on_failure=0,
        shrink_budget=0,
        **options,
    )


def main() -> None:
    bugs = [p for p in SUITE if p.buggy]
    safe = [p for p in SUITE if not p.buggy]
    print(f"{len(SUITE)} programs: {len(bugs)} bugs, {len(safe)} fixed versions", flush=True)
    medians: dict[str, float] = {}
    found_all: dict[str, bool] = {}
    for name, options in STRATEGIES:
        started = time.perf_counter()
        to_bug: list[int] = []
        missed: list[str] = []
        for p in bugs:
            r = run(p, options)
            if r.property_holds is False:
                to_bug.append(r.executions_explored)
            else:
                missed.append(p.name)
        false_alarms = [p.name for p in safe if run(p, options).property_holds is False]
        median = statistics.median(to_bug) if to_bug else float("nan")
        medians[name] = median
        found_all[name] = not missed
        print(
            f"{name:20} bugs found {len(to_bug)}/{len(bugs)}, median executions to first bug "
            f"{median:g}, false alarms {len(false_alarms)}, {time.perf_counter() - started:.0f} s"
            + (f"; missed: {', '.join(missed)}" if missed else "")
            + (f"; FALSE ALARMS: {', '.join(false_alarms)}" if false_alarms else ""),
            flush=True,
        )
    default = "default (mixed)"
    complete = [m for n, m in medians.items() if found_all[n] and n != default]
    best = min(complete) if complete else float("nan")
    ok = found_all[default] and (not complete or medians[default] <= best)
    print(
        f"default: all bugs found {found_all[default]}, median {medians[default]:g} vs best "
        f"complete single strategy {best:g}: {'OK' if ok else 'MISSED'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
