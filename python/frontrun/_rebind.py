"""Module-level copies of the builtins an exploration replaces.

`from time import monotonic` (or `perf_counter`, `sleep`, `get_ident`...)
binds the real builtin in the importing module before any exploration starts,
so patching `time.monotonic` does not reach it: that module would read the
real clock, sleep for real and see the worker's real thread id. `rebind` finds
such copies in every loaded module's globals by the identity of the builtin
and swaps in the replacement; `restore` puts the originals back.

Copies held elsewhere (a default argument, a class attribute, a local taken
before the exploration) are not found.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# Modules whose globals were scanned and held no copy, with the size of their
# globals then: a module is scanned again only once its globals changed size
# (most never do after import), which keeps `rebind` cheap.
_clean: dict[str, tuple[int, int]] = {}


def rebind(
    replacements: dict[int, tuple[Any, Callable[..., Any]]],
) -> list[tuple[dict[str, Any], str, Any, Any]]:
    """Replace, in every loaded module but frontrun's own, each global whose
    value is a key of `replacements` (by `id`, mapped to the original and its
    replacement). Returns what `restore` needs."""
    done: list[tuple[dict[str, Any], str, Any, Any]] = []
    for name, module in list(sys.modules.items()):
        if name == "frontrun" or name.startswith("frontrun."):
            continue
        g = getattr(module, "__dict__", None)
        if type(g) is not dict:
            continue
        stamp = (id(g), len(g))
        if _clean.get(name) == stamp:
            continue
        found = False
        for key, value in list(g.items()):
            hit = replacements.get(id(value))
            if hit is not None and hit[0] is value:
                g[key] = hit[1]
                done.append((g, key, value, hit[1]))
                found = True
        if found:
            _clean.pop(name, None)
        else:
            _clean[name] = stamp
    return done


def restore(done: list[tuple[dict[str, Any], str, Any, Any]]) -> None:
    """Put back what `rebind` replaced (unless the program rebound it)."""
    for g, key, original, replacement in reversed(done):
        if g.get(key) is replacement:
            g[key] = original
