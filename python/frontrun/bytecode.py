"""Random exploration of interleavings at shared accesses: `explore_interleavings`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from frontrun._explore import ExploreResult, Substrate, _run


def explore_interleavings(
    *,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    max_attempts: int = 200,
    max_ops: int | None = None,
    seed: int | None = None,
    teardown: Callable[[Any], Any] | None = None,
    timeout_per_run: float = 5.0,
    reproduce_on_failure: int = 10,
    substrate: Substrate | None = None,
) -> ExploreResult:
    """Run `max_attempts` random interleavings. `max_ops` caps the scheduling
    points per execution at which a thread switch may happen; after it, the
    running thread continues while it can."""
    return _run(
        setup,
        threads,
        invariant,
        strategy="random",
        teardown=teardown,
        max_executions=None,
        preemption_bound=None,
        total_timeout=None,
        timeout_per_run=timeout_per_run,
        stop_on_first=True,
        max_attempts=max_attempts,
        seed=seed,
        reproduce_on_failure=reproduce_on_failure,
        max_ops=max_ops,
        substrate=substrate,
    )


__all__ = ["ExploreResult", "explore_interleavings"]
