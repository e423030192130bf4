"""Random exploration of interleavings at shared accesses: `explore_interleavings`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from frontrun._explore import ExploreResult, InterleavingOptions, _options, _run

if TYPE_CHECKING:
    from typing_extensions import Unpack


def explore_interleavings(
    *,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None = None,
    **options: Unpack[InterleavingOptions],
) -> ExploreResult:
    """Run `max_attempts` random interleavings. `max_ops` caps the scheduling
    points per execution at which a thread switch may happen; after it, the
    running thread continues while it can."""
    given = dict(options)
    full_frames = bool(given.pop("full_frames", False))
    opts = _options("explore_interleavings", InterleavingOptions, given, strategy="random")
    return _run(setup, threads, invariant, teardown, opts, full_frames)


__all__ = ["ExploreResult", "InterleavingOptions", "explore_interleavings"]
