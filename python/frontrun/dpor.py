"""Systematic exploration with DPOR: `explore_dpor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from frontrun._explore import DporOptions, ExploreResult, _options, _run

if TYPE_CHECKING:
    from typing_extensions import Unpack


def explore_dpor(
    *,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None = None,
    **options: Unpack[DporOptions],
) -> ExploreResult:
    """`frontrun.explore(..., strategy="dpor")` with keyword arguments."""
    given = dict(options)
    full_frames = bool(given.pop("full_frames", False))
    opts = _options("explore_dpor", DporOptions, given, strategy="dpor")
    return _run(setup, threads, invariant, teardown, opts, full_frames)


__all__ = ["DporOptions", "ExploreResult", "explore_dpor"]
