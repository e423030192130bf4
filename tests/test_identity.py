"""Each explored thread of each execution has the identity of a new thread.

Workers are reused across executions and explored threads; none of that may
be observable: `threading.local`, `contextvars`, `get_ident`/`get_native_id`
and `current_thread()` all behave as on a freshly started `threading.Thread`.
Expected outcome sets come from running the same functions on real new
threads in every serial order (`brute_force`): the programs here only differ
by thread identity, not by interleaving, so the serial orders cover them.
"""

from __future__ import annotations

import _thread
import contextvars
import functools
import itertools
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import frontrun

_local = threading.local()  # created at import, like Django's or SQLAlchemy's
_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("_var", default=None)


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    yield
    frontrun.shutdown()


class Log:
    def __init__(self) -> None:
        self.seen: list[Any] = []


def brute_force(setup: Callable[[], Log], threads: list[Callable[[Log], None]]) -> set[Any]:
    """Outcomes of running `threads` serially, each on a new real thread, in
    every order."""
    outcomes = set()
    for order in itertools.permutations(range(len(threads))):
        s = setup()
        for i in order:
            t = threading.Thread(target=threads[i], args=(s,))
            t.start()
            t.join()
        outcomes.add(tuple(sorted(s.seen, key=repr)))
    return outcomes


def explored(
    setup: Callable[[], Log], threads: list[Callable[[Log], None]], **kw: Any
) -> tuple[set[Any], frontrun.ExploreResult]:
    outcomes = set()

    def invariant(s: Log) -> bool:
        outcomes.add(tuple(sorted(s.seen, key=repr)))
        return True

    r = frontrun.explore(setup, threads, invariant, **kw)
    return outcomes, r


def counting_thread(s: Log) -> None:
    """Per-thread cache, as a per-thread connection pool keeps one."""
    n = getattr(_local, "n", 0) + 1
    _local.n = n
    s.seen.append(("local", n))


def context_thread(s: Log) -> None:
    s.seen.append(("var", _var.get()))
    _var.set(1)


def test_threading_local_is_fresh_in_every_execution_and_thread() -> None:
    threads = [counting_thread, counting_thread]
    got, r = explored(Log, threads)
    assert r.property_holds is True and r.executions_explored > 1
    assert got == brute_force(Log, threads) == {(("local", 1),) * 2}


def test_threading_local_subclass_init_runs_per_thread() -> None:
    class PerThread(threading.local):
        def __init__(self) -> None:
            self.calls = [threading.current_thread().name]

    local = PerThread()

    def t(s: Log) -> None:
        local.calls.append(1)
        s.seen.append(len(local.calls))

    got, _ = explored(Log, [t, t])
    assert got == brute_force(Log, [t, t]) == {(2, 2)}


def test_contextvars_start_empty_in_every_execution_and_thread() -> None:
    threads = [context_thread, context_thread]
    got, r = explored(Log, threads)
    assert r.executions_explored > 1
    assert got == brute_force(Log, threads) == {(("var", None),) * 2}


def test_context_is_fresh_even_for_code_that_does_not_set_it() -> None:
    # A value set in one execution must not leak to a later one through the
    # worker's context, even when that thread never sets it again.
    def setter(s: Log) -> None:
        _var.set(42)

    def reader(s: Log) -> None:
        s.seen.append(_var.get())

    got, _ = explored(Log, [setter, reader])
    assert got == {(None,)}


def ident_thread(s: Log) -> None:
    s.seen.append(
        (
            threading.get_ident(),
            _thread.get_ident(),
            threading.get_native_id(),
            threading.current_thread().ident,
            threading.current_thread().name,
        )
    )


def test_each_thread_has_its_own_ident_and_name() -> None:
    controller = (threading.get_ident(), threading.get_native_id())
    got, r = explored(Log, [ident_thread, ident_thread])
    assert r.property_holds is True
    # The same values in every execution: the program is deterministic.
    assert len(got) == 1
    ((a, b),) = got
    assert a[0] == a[1] == a[3] and b[0] == b[1] == b[3]
    assert a[0] != b[0] and a[2] != b[2]
    assert {a[0], b[0]}.isdisjoint({controller[0]})
    assert {a[2], b[2]}.isdisjoint({controller[1]})
    assert {a[4], b[4]} == {"ident_thread#0", "ident_thread#1"}


def test_current_thread_of_a_started_thread_is_that_thread() -> None:
    def parent(s: Log) -> None:
        def child() -> None:
            me = threading.current_thread()
            s.seen.append(("child", me is t, me.name, me.ident == threading.get_ident()))

        t = threading.Thread(target=child, name="worker-7")
        t.start()
        t.join()
        s.seen.append(("parent", t.ident is not None, t.ident != threading.get_ident()))

    got, _ = explored(Log, [parent])
    assert got == {(("child", True, "worker-7", True), ("parent", True, True))}


def test_started_threads_get_fresh_thread_locals_too() -> None:
    def parent(s: Log) -> None:
        counting_thread(s)
        t = threading.Thread(target=counting_thread, args=(s,))
        t.start()
        t.join()

    got, _ = explored(Log, [parent, counting_thread])
    assert got == {(("local", 1),) * 3}


def test_identity_is_restored_after_the_exploration() -> None:
    before = (threading.get_ident, _thread.get_ident, threading.get_native_id)
    _local.mark = "controller"
    explored(Log, [counting_thread, ident_thread])
    assert (threading.get_ident, _thread.get_ident, threading.get_native_id) == before
    assert threading.get_ident() == threading.current_thread().ident
    assert _local.mark == "controller"
    # No stand-in thread stays registered.
    assert all(not type(t).__name__.startswith("Explored") for t in threading.enumerate())


def test_thread_locals_of_an_execution_are_released_at_its_end() -> None:
    released: list[int] = []

    class Conn:
        def __del__(self) -> None:
            released.append(1)

    local = threading.local()

    def t(s: Log) -> None:
        local.conn = Conn()

    r = frontrun.explore(Log, [t], lambda s: True)
    # Twice: the settling run before the exploration releases its own too.
    assert r.executions_explored == 1 and released == [1, 1]


# -- threads that would never run ---------------------------------------------


def gen_thread(s: Log) -> Iterator[None]:
    s.seen.append(1)
    yield


async def async_thread(s: Log) -> None:
    s.seen.append(1)


async def async_gen_thread(s: Log) -> Any:
    yield 1


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (gen_thread, "generator function"),
        (async_thread, "coroutine function"),
        (async_gen_thread, "async generator function"),
        (functools.partial(gen_thread), "generator function"),
    ],
)
def test_generator_and_coroutine_functions_are_refused(fn: Any, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"threads\[1\] is an? {kind}"):
        frontrun.explore(Log, [context_thread, fn], lambda s: True)


def test_a_thread_returning_a_coroutine_fails_with_a_clear_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        r = frontrun.explore(Log, [lambda s: async_thread(s)], lambda s: True)
    assert r.property_holds is False
    assert "returned a generator or coroutine without running its body" in r.explanation
