"""The coroutine substrate (explored threads as greenlets on the exploring
thread) runs the same search as the threads substrate: same execution
counts, same verdicts, same outcome sets; and each greenlet looks like its
own thread to the program."""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
import time
from typing import Any

import pytest

import frontrun
from _bug_suite import SUITE, Program

SUBSTRATES = ("threads", "coroutines")

# On 3.10 the coroutine substrate falls back to OS threads (3.10 lacks
# PyThreadState_LeaveTracing), and says so once with a RuntimeWarning: there
# both sides of each comparison run on threads.
COROUTINES_AVAILABLE = sys.version_info >= (3, 11)
pytestmark = pytest.mark.filterwarnings(
    "ignore:frontrun. the coroutine substrate needs CPython:RuntimeWarning"
)


def _both(**kw: Any) -> dict[str, frontrun.ExploreResult]:
    return {s: frontrun.explore(substrate=s, **kw) for s in SUBSTRATES}


def _summary(r: frontrun.ExploreResult) -> tuple[Any, ...]:
    return (r.property_holds, r.executions_explored, r.exhausted, r.failure_kind)


# -- the same search on both ----------------------------------------------------

_SMALL = [p for p in SUITE if len(p.threads) <= 4]


@pytest.mark.parametrize("program", [pytest.param(p, id=p.name) for p in _SMALL])
def test_bug_suite_programs_get_the_same_exploration_on_both_substrates(program: Program) -> None:
    results = _both(
        setup=program.setup,
        threads=program.threads,
        invariant=program.invariant,
        strategy="dpor",
        stop_on_first=False,
        max_executions=300,
        reproduce_on_failure=0,
        shrink_budget=0,
    )
    assert _summary(results["threads"]) == _summary(results["coroutines"])


class Counter:
    def __init__(self) -> None:
        self.value = 0


def _inc(c: Counter) -> None:
    v = c.value
    c.value = v + 1


def _outcomes(substrate: str, n: int) -> tuple[set[int], int]:
    seen: set[int] = set()

    def record(c: Counter) -> bool:
        seen.add(c.value)
        return True

    r = frontrun.explore(
        Counter, [_inc] * n, record, strategy="dpor", stop_on_first=False, substrate=substrate
    )
    assert r.property_holds is True and r.exhausted
    return seen, r.executions_explored


@pytest.mark.parametrize("n", [2, 3])
def test_lost_update_outcome_sets_and_counts_agree(n: int) -> None:
    threads = _outcomes("threads", n)
    coroutines = _outcomes("coroutines", n)
    assert threads == coroutines
    assert 1 in coroutines[0] and n in coroutines[0]


class Locked:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0


def _locked_inc(s: Locked) -> None:
    for _ in range(2):
        with s.lock:
            s.value += 1


def test_locked_counter_proof_agrees() -> None:
    rs = _both(
        setup=Locked,
        threads=[_locked_inc] * 3,
        invariant=lambda s: s.value == 6,
        strategy="dpor",
    )
    assert _summary(rs["threads"]) == _summary(rs["coroutines"])
    assert rs["coroutines"].property_holds is True and rs["coroutines"].exhausted


class Two:
    def __init__(self) -> None:
        self.a = threading.Lock()
        self.b = threading.Lock()


def _ab(s: Two) -> None:
    with s.a, s.b:
        pass


def _ba(s: Two) -> None:
    with s.b, s.a:
        pass


def test_deadlock_is_found_on_coroutines_and_the_token_replays_on_threads() -> None:
    r = frontrun.explore(Two, [_ab, _ba], lambda s: True, substrate="coroutines")
    assert r.property_holds is False and r.failure_kind == "deadlock"
    assert r.counterexample is not None
    again = frontrun.replay(r.counterexample, Two, [_ab, _ba], lambda s: True, substrate="threads")
    assert again.property_holds is False and again.failure_kind == "deadlock"


def test_exception_in_a_greenlet_is_that_threads_failure() -> None:
    def boom(c: Counter) -> None:
        raise KeyError("boom")

    r = frontrun.explore(Counter, [boom, _inc], lambda c: True, substrate="coroutines")
    assert r.property_holds is False and r.failure_kind == "exception"
    assert "KeyError" in r.explanation and "boom" in r.explanation


# -- cooperative primitives, spawned threads, time ------------------------------


class Pipe:
    def __init__(self) -> None:
        self.q: queue.Queue[int] = queue.Queue()
        self.ev = threading.Event()
        self.got: list[int] = []
        self.children: list[str] = []


def _producer(p: Pipe) -> None:
    for i in range(2):
        p.q.put(i)
    p.ev.set()


def _consumer(p: Pipe) -> None:
    p.ev.wait()
    t = threading.Thread(target=lambda: p.children.append(threading.current_thread().name))
    t.start()
    for _ in range(2):
        p.got.append(p.q.get(timeout=1.0))
    t.join()
    time.sleep(0.5)


def _pipe_ok(p: Pipe) -> bool:
    return p.got == [0, 1] and len(p.children) == 1


def test_queues_events_spawned_threads_and_sleep_agree() -> None:
    rs = _both(setup=Pipe, threads=[_producer, _consumer], invariant=_pipe_ok, strategy="dpor")
    assert _summary(rs["threads"]) == _summary(rs["coroutines"])
    assert rs["coroutines"].property_holds is True


# -- identity ----------------------------------------------------------------


_var: contextvars.ContextVar[str] = contextvars.ContextVar("frontrun_test_var", default="unset")


class Seen:
    def __init__(self) -> None:
        self.local = threading.local()
        self.rows: list[tuple[Any, ...]] = []


def _identity(s: Seen) -> None:
    me = threading.current_thread()
    assert getattr(s.local, "x", None) is None
    s.local.x = me.name
    assert _var.get() == "unset"
    _var.set(me.name)
    time.sleep(0)  # a scheduling point: the other greenlet runs in between
    s.rows.append(
        (me.name, threading.get_ident(), threading.get_native_id(), s.local.x, _var.get())
    )


def _identity_ok(s: Seen) -> bool:
    names = {r[0] for r in s.rows}
    idents = {r[1] for r in s.rows}
    natives = {r[2] for r in s.rows}
    ok = len(names) == len(idents) == len(natives) == 2
    return ok and all(r[0] == r[3] == r[4] for r in s.rows)


def test_each_greenlet_has_its_own_thread_identity() -> None:
    def first(s: Seen) -> None:
        _identity(s)

    def second(s: Seen) -> None:
        _identity(s)

    r = frontrun.explore(
        Seen, [first, second], _identity_ok, strategy="dpor", substrate="coroutines"
    )
    assert r.property_holds is True, r.explanation
    assert r.executions_explored > 1


def test_controller_identity_is_untouched_by_an_exploration() -> None:
    local = threading.local()
    local.x = "controller"
    token = _var.set("controller")
    try:
        before = (threading.get_ident(), threading.current_thread())
        frontrun.explore(Counter, [_inc, _inc], lambda c: True, substrate="coroutines")
        assert (threading.get_ident(), threading.current_thread()) == before
        assert local.x == "controller"
        assert _var.get() == "controller"
    finally:
        _var.reset(token)


# -- the option ----------------------------------------------------------------


def test_unknown_substrate_is_rejected() -> None:
    with pytest.raises(ValueError, match="substrate"):
        frontrun.explore(Counter, [_inc], lambda c: True, substrate="fibers")  # type: ignore[arg-type]


def test_explore_dpor_and_explore_interleavings_take_the_substrate() -> None:
    from frontrun.bytecode import explore_interleavings
    from frontrun.dpor import explore_dpor

    d = explore_dpor(
        setup=Counter,
        threads=[_inc, _inc],
        invariant=lambda c: c.value == 2,
        substrate="coroutines",
    )
    assert d.property_holds is False
    i = explore_interleavings(
        setup=Counter,
        threads=[_inc, _inc],
        invariant=lambda c: c.value == 2,
        max_attempts=50,
        seed=3,
        substrate="coroutines",
    )
    assert i.property_holds is False


def _spin(c: Counter) -> None:
    while True:
        pass


def test_the_result_says_which_substrate_ran() -> None:
    r = frontrun.explore(Counter, [_inc, _inc], lambda c: True, substrate="coroutines")
    assert r.substrate == ("coroutines" if COROUTINES_AVAILABLE else "threads")


@pytest.mark.skipif(not COROUTINES_AVAILABLE, reason="no coroutine substrate on CPython 3.10")
def test_a_greenlet_that_never_yields_is_stopped_at_the_run_timeout() -> None:
    r = frontrun.explore(
        Counter, [_spin, _inc], lambda c: True, substrate="coroutines", timeout_per_run=0.5
    )
    assert r.property_holds is None
    assert "timeout_per_run" in r.explanation
    # Nothing is left pending on the exploring thread: it explores again.
    again = frontrun.explore(Counter, [_inc, _inc], lambda c: c.value == 2, substrate="coroutines")
    assert again.property_holds is False
