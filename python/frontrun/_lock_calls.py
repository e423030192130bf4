"""Reads, from the bytecode, whether a lock ``acquire`` call is a try-lock.

The Rust profile hook (``block_hook.rs``) sees ``lock.acquire`` called but
not its arguments. It asks this module only when the lock is taken, which is
rare, so the cost of ``dis`` does not matter; ``dis`` also keeps this right
across CPython versions.
"""

from __future__ import annotations

import dis
import functools
from types import CodeType, FrameType

__all__ = ["passes_blocking_false", "with_targets"]

_SIMPLE_LOADS = frozenset(
    {"LOAD_CONST", "LOAD_FAST", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_SMALL_INT"}
)
_CALL_PREFIXES = frozenset({"PRECALL", "KW_NAMES", "CACHE", "PUSH_NULL"})


def passes_blocking_false(frame: FrameType) -> bool:
    """Whether the call at ``frame``'s current instruction is
    ``acquire(False)``, ``acquire(blocking=False)`` or has a zero timeout."""
    return _is_try_call(frame.f_code, frame.f_lasti)


@functools.lru_cache(maxsize=1024)
def _is_try_call(code: CodeType, lasti: int) -> bool:
    instrs = list(dis.get_instructions(code))
    at = next((i for i, ins in enumerate(instrs) if ins.offset == lasti), None)
    if at is None or not instrs[at].opname.startswith("CALL"):
        return False
    argc = instrs[at].arg or 0
    kwnames: tuple[str, ...] = ()
    j = at - 1
    if instrs[at].opname == "CALL_KW" and j >= 0 and instrs[j].opname == "LOAD_CONST":
        kwnames = tuple(instrs[j].argval)
        j -= 1
    while j >= 0 and instrs[j].opname in _CALL_PREFIXES:
        if instrs[j].opname == "KW_NAMES":
            kwnames = tuple(code.co_consts[instrs[j].arg or 0])
        j -= 1
    args = instrs[j - argc + 1 : j + 1] if argc else []
    if len(args) != argc or any(a.opname not in _SIMPLE_LOADS for a in args):
        return False
    positional = argc - len(kwnames)
    named = dict(zip(kwnames, args[positional:], strict=True))
    blocking = args[0] if positional >= 1 else named.get("blocking")
    timeout = args[1] if positional >= 2 else named.get("timeout")

    def const_is(ins: dis.Instruction | None, test: object) -> bool:
        return (
            ins is not None
            and ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT")
            and ins.argval == test
        )

    return const_is(blocking, False) or const_is(timeout, 0)


_WITH_LOADS = {
    "LOAD_FAST": "fast",
    "LOAD_FAST_CHECK": "fast",
    "LOAD_DEREF": "fast",
    "LOAD_CLASSDEREF": "fast",
    "LOAD_GLOBAL": "global",
    "LOAD_NAME": "name",
}


def with_targets(code: CodeType) -> dict[int, tuple[str, str, tuple[str, ...]]]:
    """Lines of ``code`` that start a ``with`` on a plain name or attribute
    chain (``with lock:``, ``with self._lock:``), as ``{line: (scope, name,
    attributes)}``. CPython 3.11 enters such a context manager without a
    profile event, so the line tracer evaluates the chain at the line event
    to see whether the ``with`` would wait for a lock."""
    instrs = [i for i in dis.get_instructions(code) if i.opname not in ("CACHE", "NOP")]
    found: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for k, ins in enumerate(instrs):
        if ins.opname != "BEFORE_WITH":
            continue
        attrs: list[str] = []
        j = k - 1
        while j >= 0 and instrs[j].opname == "LOAD_ATTR":
            attrs.append(str(instrs[j].argval))
            j -= 1
        if j < 0 or instrs[j].opname not in _WITH_LOADS:
            continue
        first = instrs[j]
        line = first.positions.lineno if first.positions is not None else None
        if line is None or line in found:
            continue
        found[line] = (_WITH_LOADS[first.opname], str(first.argval), tuple(reversed(attrs)))
    return found
