"""Repeated timeouts: a proof only when timing out again changes nothing.

A thread that timed out may time out again before the others move only if
that repeats a state it was already in (a polling loop re-checking). A loop
that counts its timeouts, or changes anything else between them, reaches
more outcomes with each timeout in real runs: the search follows at most
`MAX_TIMEOUTS` of them and must not call the pass a proof.

The reference outcome sets come from brute force, not from reading the
programs: every interleaving of the threads' steps, where a thread at a
timed wait may go on when the wait would succeed, or time out (at most `k`
times; when nothing else can run it times out anyway). When the set for
`k` and `k + 1` timeouts agree, more timeouts add nothing and DPOR must
prove exactly that set; when they differ, real runs reach outcomes that
any bound leaves out, and DPOR must answer `None` having found at least
the outcomes of `k` timeouts.

Each thread is a generator: one atomic step between `yield`s. Before a
timed wait it yields a `Wait`, in which brute force sets the timeout it
uses (0: time out now); under frontrun the yields are ignored and the wait
is a real timed wait, explored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import frontrun
from frontrun import _native

MAX_TIMEOUTS: int = _native.MAX_TIMEOUTS


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    yield
    frontrun.shutdown()


class State:
    def __init__(self) -> None:
        self.ev = threading.Event()
        self.lock = threading.Lock()
        self.x = 0
        self.flag = False
        self.out: list[Any] = []


class Wait:
    """Yielded before a wait. `ready()`: the wait would succeed now. A
    `timeout` of `None`: a wait without timeout (enabled only when ready)."""

    def __init__(self, ready: Callable[[], bool], timeout: float | None = 0.1) -> None:
        self.ready = ready
        self.timeout = timeout


Thread = Callable[[State], Iterator[Any]]


def brute_force(threads: list[Thread], k: int) -> set[tuple[Any, ...]]:
    """Final `out` of every interleaving with at most `k` chosen timeouts per
    thread (replaying each choice prefix from a fresh state)."""
    outcomes: set[tuple[Any, ...]] = set()

    def run(prefix: list[tuple[int, str]]) -> None:
        s = State()
        gens = [t(s) for t in threads]
        last: list[Any] = [None] * len(threads)
        done = [False] * len(threads)
        chosen = [0] * len(threads)
        for t, how in prefix:
            w = last[t]
            if isinstance(w, Wait) and how != "go":
                w.timeout = 0
            chosen[t] += how == "timeout"
            try:
                last[t] = next(gens[t])
            except StopIteration:
                done[t] = True
        options: list[tuple[int, str]] = []
        for t in range(len(threads)):
            w = last[t]
            if done[t]:
                continue
            if not isinstance(w, Wait) or w.ready():
                options.append((t, "go"))
            elif w.timeout is not None and chosen[t] < k:
                options.append((t, "timeout"))
        if not options:
            # Nothing can run: a timed waiter times out anyway.
            options = [
                (t, "forced")
                for t in range(len(threads))
                if not done[t] and isinstance(last[t], Wait) and last[t].timeout is not None
            ]
            if not options:
                outcomes.add(tuple(s.out) if all(done) else ("deadlock",))
                return
        for o in options:
            run([*prefix, o])

    run([])
    return outcomes


def as_thread(gen: Thread) -> Callable[[State], None]:
    def run(s: State) -> None:
        for _ in gen(s):
            pass

    return run


def explored(threads: list[Thread]) -> tuple[set[tuple[Any, ...]], frontrun.ExploreResult]:
    seen: set[tuple[Any, ...]] = set()

    def record(s: State) -> bool:
        seen.add(tuple(s.out))
        return True

    r = frontrun.explore(
        State,
        [as_thread(t) for t in threads],
        record,
        strategy="dpor",
        stop_on_first=False,
        max_executions=20000,
        total_timeout=120,
    )
    return seen, r


def check(threads: list[Thread], k: int = 3) -> tuple[set[tuple[Any, ...]], frontrun.ExploreResult]:
    want, more = brute_force(threads, k), brute_force(threads, k + 1)
    got, r = explored(threads)
    if want == more:
        assert r.property_holds is True and r.exhausted, r.explanation
        assert got == want, (sorted(want - got, key=repr), sorted(got - want, key=repr))
    else:
        assert r.property_holds is None and not r.exhausted, r.explanation
        assert "timed out more often than the search follows" in r.explanation
        assert want <= got, sorted(want - got, key=repr)
    return got, r


# -- threads ---------------------------------------------------------------------


def setter(s: State) -> Iterator[Any]:
    s.ev.set()
    yield


def slow_setter(s: State) -> Iterator[Any]:
    s.x = 1
    yield
    s.x = 2
    yield
    s.ev.set()
    yield


def poller(s: State) -> Iterator[Any]:
    while True:
        w = Wait(s.ev.is_set)
        yield w
        if s.ev.wait(w.timeout):
            break
    s.out.append("seen")


def counting_poller(s: State) -> Iterator[Any]:
    n = 0
    while True:
        w = Wait(s.ev.is_set)
        yield w
        if s.ev.wait(w.timeout):
            break
        n += 1
    s.out.append(n)


def private_list_poller(s: State) -> Iterator[Any]:
    # The count lives in a private list: its content, not its identity, is
    # the thread's state.
    misses: list[int] = []
    while True:
        w = Wait(s.ev.is_set)
        yield w
        if s.ev.wait(w.timeout):
            break
        misses.append(1)
    s.out.append(len(misses))


def shared_counting_poller(s: State) -> Iterator[Any]:
    # The count is shared state: a write between timeouts.
    while True:
        w = Wait(s.ev.is_set)
        yield w
        if s.ev.wait(w.timeout):
            break
        s.x += 1
        yield
    s.out.append(s.x)


def reading_poller(s: State) -> Iterator[Any]:
    # Re-reads shared state between timeouts, changes nothing: a stutter.
    while True:
        w = Wait(s.ev.is_set)
        yield w
        if s.ev.wait(w.timeout):
            break
        _ = s.x
        yield
    s.out.append(("seen", s.x))


def lock_counter(s: State) -> Iterator[Any]:
    n = 0
    while True:
        w = Wait(lambda: not s.lock.locked())
        yield w
        if s.lock.acquire(timeout=w.timeout):
            break
        n += 1
    s.out.append(n)
    s.lock.release()
    yield


def lock_holder(s: State) -> Iterator[Any]:
    yield Wait(lambda: not s.lock.locked(), None)
    s.lock.acquire()
    yield
    s.x = 1
    yield
    s.lock.release()
    yield


def flag_setter(s: State) -> Iterator[Any]:
    s.flag = True
    yield


def sleep_counter(s: State) -> Iterator[Any]:
    # `time.sleep` may end before the others ran (real threads may not be
    # scheduled while it sleeps): a counting sleep loop has no bound either.
    n = 0
    while True:
        if s.flag:
            break
        yield
        w = Wait(lambda: False)
        yield w
        time.sleep(w.timeout)
        n += 1
    s.out.append(n)


def sleep_then_write(s: State) -> Iterator[Any]:
    w = Wait(lambda: False)
    yield w
    time.sleep(w.timeout)
    s.out.append("sleeper")
    yield


def writer(s: State) -> Iterator[Any]:
    s.out.append("writer")
    yield


# -- tests -----------------------------------------------------------------------


def test_a_polling_loop_that_only_rechecks_is_a_proof() -> None:
    check([poller, slow_setter])


def test_a_poller_rereading_shared_state_is_a_proof() -> None:
    check([reading_poller, slow_setter])


@pytest.mark.parametrize(
    "counter",
    [counting_poller, private_list_poller, shared_counting_poller],
    ids=lambda f: f.__name__,
)
def test_a_loop_counting_its_timeouts_is_no_proof(counter: Thread) -> None:
    got, _ = check([counter, setter])
    # It counted past what any fixed bound of interleavings between the
    # others' steps allows: the repeats before the setter ran were explored.
    assert len(got) > 2


def test_counting_timeouts_of_a_lock_is_no_proof() -> None:
    check([lock_counter, lock_holder])


def test_the_timeout_bound_is_the_search_bound() -> None:
    # With the bound itself, brute force and the search reach the same counts.
    got, r = explored([counting_poller, slow_setter])
    assert r.property_holds is None and not r.exhausted
    assert got == brute_force([counting_poller, slow_setter], MAX_TIMEOUTS)


def test_a_sleep_may_end_before_the_others_ran() -> None:
    check([sleep_then_write, writer])


def test_a_loop_counting_its_sleeps_is_no_proof() -> None:
    check([sleep_counter, flag_setter])


def test_the_readme_names_the_bound() -> None:
    import pathlib

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    assert f"at most {MAX_TIMEOUTS} times per execution" in readme
