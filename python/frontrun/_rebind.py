"""Module-level copies of the builtins an exploration replaces.

`from time import monotonic` (or `perf_counter`, `sleep`, `get_ident`...)
binds the real builtin in the importing module before any exploration starts,
so patching `time.monotonic` does not reach it: that module would read the
real clock, sleep for real and see the worker's real thread id. `rebind` finds
such copies in the globals of the program's own modules by the identity of
the builtin and swaps in the replacement; `restore` puts the originals back.

Only modules whose code the tracer follows are rebound: not the standard
library, installed packages or frontrun. Their copies serve threads frontrun
does not schedule too (`reprlib`'s `get_ident`, pytest's clocks), and a
replacement read by a worker abandoned after `timeout_per_run` would mix that
worker's clock and identity with the next execution's. The standard library's
own copies that explored threads rely on (`threading._time`, `queue.time`) are
patched by name in `_coop`.

Copies held elsewhere (a default argument, a class attribute, a local taken
before the exploration) are not found.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

# Modules whose globals were scanned and held no copy, with the size of their
# globals then: a module is scanned again only once its globals changed size
# (most never do after import), which keeps `rebind` cheap.
_clean: dict[str, tuple[int, int]] = {}


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # frontrun's parent
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


_LIBRARY = _library_dirs()
_FRONTRUN_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")


def _is_program_module(name: str, module: Any) -> bool:
    """Whether `module` is the program's own code (traced), not a library's."""
    if name == "frontrun" or name.startswith("frontrun.") or name in sys.builtin_module_names:
        return False
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.origin in ("built-in", "frozen"):
        return False
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return True  # made at run time (`exec`, `types.ModuleType`): the program's
    real = os.path.realpath(path)
    if real.startswith(_FRONTRUN_DIR):
        return False
    parts = real.replace(os.sep, "/").split("/")
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not real.startswith(_LIBRARY)


def rebind(
    replacements: dict[int, tuple[Any, Callable[..., Any]]],
) -> list[tuple[dict[str, Any], str, Any, Any]]:
    """Replace, in every loaded module of the program, each global whose
    value is a key of `replacements` (by `id`, mapped to the original and its
    replacement). Returns what `restore` needs."""
    done: list[tuple[dict[str, Any], str, Any, Any]] = []
    for name, module in list(sys.modules.items()):
        g = getattr(module, "__dict__", None)
        if type(g) is not dict:
            continue
        stamp = (id(g), len(g))
        if _clean.get(name) == stamp:
            continue
        if not _is_program_module(name, module):
            _clean[name] = stamp
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
