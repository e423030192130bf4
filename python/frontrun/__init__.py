"""frontrun: deterministic concurrency testing for Python."""

from frontrun._explore import ExploreResult, explore, replay, shutdown
from frontrun._native import __version__
from frontrun.common import Schedule, Step
from frontrun.trace_markers import AsyncTraceExecutor, TraceExecutor

__all__ = [
    "AsyncTraceExecutor",
    "ExploreResult",
    "Schedule",
    "Step",
    "TraceExecutor",
    "__version__",
    "explore",
    "replay",
    "shutdown",
]
