"""frontrun: deterministic concurrency testing for Python."""

from frontrun._native import __version__
from frontrun.common import Schedule, Step
from frontrun.trace_markers import TraceExecutor

__all__ = ["Schedule", "Step", "TraceExecutor", "__version__"]

from frontrun._explore import ExploreResult, explore, replay

__all__ += ["ExploreResult", "explore", "replay"]
