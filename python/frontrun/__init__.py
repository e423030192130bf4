"""frontrun: deterministic concurrency testing for Python."""

from frontrun._native import __version__

__all__ = ["__version__"]

from frontrun._explore import ExploreResult, explore, replay

__all__ += ["ExploreResult", "explore", "replay"]
