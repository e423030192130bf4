"""Reads, from the bytecode, how long a lock ``acquire`` call may wait.

The Rust profile hook (``block_hook.rs``) sees ``lock.acquire`` called but
not its arguments. It asks this module only when the lock is taken, which is
rare, so the cost of ``dis`` does not matter; ``dis`` also keeps this right
across CPython versions.
"""

from __future__ import annotations

import _thread
import ast
import dis
import functools
import linecache
import sys
from types import CodeType, FrameType

__all__ = ["acquire_wait", "awaited_real_lock", "with_targets"]

_SIMPLE_LOADS = frozenset(
    {
        "LOAD_CONST",
        "LOAD_FAST",
        "LOAD_FAST_CHECK",
        "LOAD_GLOBAL",
        "LOAD_NAME",
        "LOAD_DEREF",
        "LOAD_SMALL_INT",
    }
)
_CALL_PREFIXES = frozenset({"PRECALL", "KW_NAMES", "CACHE", "PUSH_NULL"})


def acquire_wait(frame: FrameType) -> float | None:
    """How long the ``acquire`` call at ``frame``'s current instruction may
    wait: ``0.0`` for a try-lock (``acquire(False)``, ``blocking=False``, a
    zero timeout), the timeout in seconds for a timed wait (``acquire(True,
    5)``, as ``Condition.wait(timeout=5)`` makes), ``None`` for a wait
    without limit or arguments that cannot be read."""
    spec = _call_args(frame.f_code, frame.f_lasti)
    if spec is None:
        return None
    blocking_src, timeout_src = spec
    missing = object()
    blocking = _value(frame, blocking_src, missing)
    timeout = _value(frame, timeout_src, missing)
    if blocking is not missing and blocking is not None and not blocking:
        return 0.0
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0:
        return float(timeout)
    return None


_Source = tuple[str, object] | None
"""Where an argument comes from: ``("const", value)``, ``("fast", name)``,
``("global", name)``, or ``None`` when it is not passed."""


def _value(frame: FrameType, src: _Source, missing: object) -> object:
    if src is None:
        return missing
    kind, what = src
    if kind == "const":
        return what
    if kind == "fast":
        return frame.f_locals.get(str(what), missing)
    return frame.f_globals.get(str(what), missing)


@functools.lru_cache(maxsize=1024)
def _call_args(code: CodeType, lasti: int) -> tuple[_Source, _Source] | None:
    """Where the ``blocking`` and ``timeout`` arguments of the call at
    ``lasti`` come from, or ``None`` if they are not simple loads."""
    instrs = [i for i in dis.get_instructions(code) if i.opname != "EXTENDED_ARG"]
    at = next((i for i, ins in enumerate(instrs) if ins.offset == lasti), None)
    if at is None or not instrs[at].opname.startswith("CALL"):
        return None
    argc = instrs[at].arg or 0
    kwnames: tuple[str, ...] = ()
    j = at - 1
    if instrs[at].opname in ("CALL_KW", "CALL_FUNCTION_KW") and j >= 0:
        if instrs[j].opname != "LOAD_CONST":
            return None
        kwnames = tuple(instrs[j].argval)
        j -= 1
    while j >= 0 and instrs[j].opname in _CALL_PREFIXES:
        if instrs[j].opname == "KW_NAMES":
            kwnames = tuple(code.co_consts[instrs[j].arg or 0])
        j -= 1
    args = instrs[j - argc + 1 : j + 1] if argc else []
    if len(args) != argc or any(a.opname not in _SIMPLE_LOADS for a in args):
        return None
    positional = argc - len(kwnames)
    if positional < 0:
        return None
    named = dict(zip(kwnames, args[positional:], strict=True))
    blocking = args[0] if positional >= 1 else named.get("blocking")
    timeout = args[1] if positional >= 2 else named.get("timeout")
    return _source(blocking), _source(timeout)


def _source(ins: dis.Instruction | None) -> _Source:
    if ins is None:
        return None
    if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
        return ("const", ins.argval)
    if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
        return ("global", str(ins.argval))
    return ("fast", str(ins.argval))


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
    attributes)}``. CPython 3.10 to 3.13 enter such a context manager without
    a profile event (``SETUP_WITH`` on 3.10, ``BEFORE_WITH`` after), so the
    line tracer evaluates the chain at the line event to see whether the
    ``with`` would wait for a lock."""
    instrs: list[tuple[dis.Instruction, int | None]] = []
    line: int | None = None
    for ins in dis.get_instructions(code):
        line = _line_of(ins, line)
        if ins.opname not in ("CACHE", "NOP", "EXTENDED_ARG"):
            instrs.append((ins, line))
    found: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for k, (ins, _) in enumerate(instrs):
        if ins.opname not in _WITH_ENTRIES:
            continue
        attrs: list[str] = []
        j = k - 1
        while j >= 0 and instrs[j][0].opname in ("LOAD_ATTR", "LOAD_METHOD"):
            attrs.append(str(instrs[j][0].argval))
            j -= 1
        if j < 0 or instrs[j][0].opname not in _WITH_LOADS:
            continue
        first, first_line = instrs[j]
        if first_line is None or first_line in found:
            continue
        found[first_line] = (
            _WITH_LOADS[first.opname],
            str(first.argval),
            tuple(reversed(attrs)),
        )
    return found


_WITH_ENTRIES = frozenset({"SETUP_WITH", "BEFORE_WITH"})
"""The instruction that enters a ``with`` block: ``SETUP_WITH`` on 3.10,
``BEFORE_WITH`` on 3.11 to 3.13."""


def _line_of(ins: dis.Instruction, current: int | None) -> int | None:
    """The source line of ``ins``: its position on 3.11+, else the last line
    start seen (3.10 marks only the first instruction of each line)."""
    positions = getattr(ins, "positions", None)
    if positions is not None and positions.lineno is not None:
        return int(positions.lineno)
    starts = getattr(ins, "starts_line", None)
    if isinstance(starts, int) and not isinstance(starts, bool):
        return starts
    return current


_ACQUIRES = frozenset({"acquire", "__enter__"})


def awaited_real_lock(
    frame: FrameType,
) -> tuple[str, str, int | None, int, tuple[int, str] | None] | None:
    """The real (not frontrun's) lock the thread of ``frame`` waits for, if
    its current instruction is a ``with`` on, or an ``acquire()`` of, a name
    or attribute chain that holds a locked ``_thread`` lock: ``(expression,
    "Lock" or "RLock", owner ident of an RLock, the lock's address, the
    thread inside a ``with`` on it and that ``with``'s place)``. For stall
    reports, so ``dis`` and ``ast`` cost nothing that matters."""
    instrs = [
        i for i in dis.get_instructions(frame.f_code) if i.opname not in ("CACHE", "EXTENDED_ARG")
    ]
    at = next((k for k, ins in enumerate(instrs) if ins.offset == frame.f_lasti), None)
    if at is None:
        return None
    if instrs[at].opname in _WITH_ENTRIES:
        j = at - 1
    elif instrs[at].opname.startswith("CALL"):
        # Back over the call's arguments to `<chain>.acquire`.
        j = next(
            (
                k - 1
                for k in range(at - 1, max(at - 12, -1), -1)
                if instrs[k].opname in ("LOAD_METHOD", "LOAD_ATTR")
                and instrs[k].argval in _ACQUIRES
            ),
            None,
        )
        if j is None:
            return None
    else:
        return None
    attrs: list[str] = []
    while j >= 0 and instrs[j].opname in ("LOAD_ATTR", "LOAD_METHOD"):
        attrs.append(str(instrs[j].argval))
        j -= 1
    if j < 0 or instrs[j].opname not in _WITH_LOADS:
        return None
    name = str(instrs[j].argval)
    missing = object()
    if _WITH_LOADS[instrs[j].opname] == "fast":
        obj = frame.f_locals.get(name, missing)
    else:
        obj = frame.f_locals.get(name, frame.f_globals.get(name, missing))
    try:
        for a in reversed(attrs):
            obj = getattr(obj, a)
    except Exception:
        return None
    expr = ".".join([name, *reversed(attrs)])
    if type(obj) is _thread.LockType:
        if not obj.locked():
            return None
        return (expr, "Lock", None, id(obj), _with_holder(obj, frame))
    if type(obj) is _thread.RLock:
        text = repr(obj)
        owner = next((w[6:] for w in text.split() if w.startswith("owner=")), "0")
        if not text.startswith("<locked"):
            return None
        return (expr, "RLock", int(owner), id(obj), _with_holder(obj, frame))
    return None


def _with_holder(lock: object, waiting: FrameType) -> tuple[int, str] | None:
    """A thread (not the one of ``waiting``) whose stack is inside a ``with``
    block on ``lock``: ``(ident, "file:line in function")`` of that
    ``with``. A plain lock does not record its holder; a ``with`` whose
    block encloses a frame's current line shows it."""
    for ident, top in sys._current_frames().items():
        if top is waiting:
            continue
        f: FrameType | None = top
        while f is not None:
            for node in _withs_around(f.f_code, f.f_lineno):
                for item in node.items:
                    if _evaluate(item.context_expr, f) is lock:
                        name = f.f_code.co_filename.rsplit("/", 1)[-1]
                        return ident, f"{name}:{node.lineno} in {f.f_code.co_name}"
            f = f.f_back
    return None


def _withs_around(code: CodeType, line: int) -> list[ast.With]:
    """The ``with`` statements of ``code``'s own body whose block holds
    ``line``, innermost last."""
    return [
        w
        for w, first, last, owner in _withs_of_file(code.co_filename)
        if owner == code.co_firstlineno and first <= line <= last
    ]


@functools.lru_cache(maxsize=64)
def _withs_of_file(filename: str) -> list[tuple[ast.With, int, int, int]]:
    """Every ``with`` of a source file: ``(node, first and last line of its
    block, first line of the code object it belongs to)``."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return []
    found: list[tuple[ast.With, int, int, int]] = []

    def visit(node: ast.AST, owner: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                decorators = getattr(child, "decorator_list", [])
                first = min([child.lineno, *(d.lineno for d in decorators)])
                visit(child, first)
                continue
            if isinstance(child, ast.ClassDef):
                visit(child, child.lineno)
                continue
            if isinstance(child, ast.With) and child.body:
                last = child.body[-1].end_lineno or child.body[-1].lineno
                found.append((child, child.body[0].lineno, last, owner))
            visit(child, owner)

    visit(tree, 1)
    return found


def _evaluate(node: ast.expr, frame: FrameType) -> object:
    """A name or attribute chain's value in ``frame``; ``None`` otherwise."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    missing = object()
    obj = frame.f_locals.get(node.id, missing)
    if obj is missing:
        obj = frame.f_globals.get(node.id, missing)
    if obj is missing:
        return None
    try:
        for a in reversed(attrs):
            obj = getattr(obj, a)
    except Exception:
        return None
    return obj
