"""frontrun: deterministic concurrency testing for Python."""

from frontrun._native import __version__

__all__ = ["__version__"]
