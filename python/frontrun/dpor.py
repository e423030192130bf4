"""Systematic exploration with DPOR: `explore_dpor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from frontrun._explore import ExploreResult, SearchOrder, Substrate, explore


def explore_dpor(
    *,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None = None,
    max_executions: int | None = None,
    preemption_bound: int | None = None,
    total_timeout: float | None = None,
    timeout_per_run: float = 5.0,
    stop_on_first: bool = True,
    reproduce_on_failure: int = 10,
    search_order: SearchOrder = "lowest-first",
    seed: int | None = None,
    substrate: Substrate | None = None,
) -> ExploreResult:
    """`frontrun.explore(..., strategy="dpor")` with keyword arguments."""
    return explore(
        setup,
        threads,
        invariant,
        strategy="dpor",
        teardown=teardown,
        max_executions=max_executions,
        preemption_bound=preemption_bound,
        total_timeout=total_timeout,
        timeout_per_run=timeout_per_run,
        stop_on_first=stop_on_first,
        reproduce_on_failure=reproduce_on_failure,
        search_order=search_order,
        seed=seed,
        substrate=substrate,
    )


__all__ = ["ExploreResult", "explore_dpor"]
