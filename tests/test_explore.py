"""The exploration API: argument checking, strategies, the worker pool's lifecycle."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

import frontrun
from frontrun import _explore
from frontrun.bytecode import explore_interleavings


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    # Idle workers outlive an exploration; other modules count threads.
    yield
    frontrun.shutdown()


class Counter:
    def __init__(self) -> None:
        self.value = 0


def inc(c: Counter) -> None:
    t = c.value
    c.value = t + 1


def ok(c: Counter) -> bool:
    return True


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"threads": []}, ValueError, "threads is empty"),
        ({"threads": [1]}, TypeError, r"threads\[0\] must be callable"),
        ({"threads": inc}, TypeError, "list of callables"),
        ({"setup": 3}, TypeError, "setup must be callable"),
        ({"invariant": None}, TypeError, "invariant must be callable"),
        ({"strategy": "bfs"}, ValueError, "unknown strategy 'bfs'"),
        ({"max_executions": -1}, ValueError, "max_executions must be > 0"),
        ({"max_executions": 1.5}, TypeError, "max_executions must be an int"),
        ({"preemption_bound": -2}, ValueError, "preemption_bound must be >= 0"),
        ({"timeout_per_run": 0}, ValueError, "timeout_per_run must be > 0"),
        ({"total_timeout": float("nan")}, ValueError, "total_timeout must be a number"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be > 0"),
        ({"seed": -1}, ValueError, "seed must be an int between 0"),
        ({"teardown": "x"}, TypeError, "teardown must be callable"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, Any], exc: type, match: str) -> None:
    args: dict[str, Any] = {"setup": Counter, "threads": [inc], "invariant": ok}
    args.update(kwargs)
    setup, threads, invariant = args.pop("setup"), args.pop("threads"), args.pop("invariant")
    with pytest.raises(exc, match=match):
        frontrun.explore(setup, threads, invariant, **args)


def wait_until_threads_are(expected: set[threading.Thread], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while set(threading.enumerate()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    extra = set(threading.enumerate()) - expected
    assert not extra, f"threads still running after {within} s: {extra}"


def test_no_work_is_left_behind_and_idle_workers_leave_by_themselves() -> None:
    frontrun.shutdown()
    before = set(threading.enumerate())
    frontrun.explore(Counter, [inc, inc, inc], lambda c: c.value == 3, reproduce_on_failure=2)
    frontrun.explore(Counter, [inc, inc], ok)
    # What remains is idle daemon workers: nothing runs, nothing blocks exit.
    left = set(threading.enumerate()) - before
    assert left and all(t.daemon and t.name == "frontrun-worker" for t in left)
    workers, busy = _explore._pool().stats()
    assert busy == 0 and 0 < workers <= 3
    wait_until_threads_are(before)
    assert _explore._pool().stats() == (0, 0)


def test_shutdown_stops_the_idle_workers_at_once() -> None:
    frontrun.shutdown()
    before = set(threading.enumerate())
    frontrun.explore(Counter, [inc, inc], ok)
    assert set(threading.enumerate()) != before
    frontrun.shutdown()
    assert set(threading.enumerate()) == before
    # The next exploration starts new workers.
    assert frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2).property_holds is False


def test_workers_serve_every_exploration() -> None:
    frontrun.shutdown()
    # Idle workers that never leave, so the count cannot depend on timing.
    workers = _explore._Workers(idle_exit=60.0)
    _explore._workers = workers
    try:
        for _ in range(3):
            frontrun.explore(Counter, [inc, inc], ok)
        frontrun.explore(Counter, [inc, inc, inc], ok)
        assert len(workers.threads) == 3
        assert workers.pool.stats() == (3, 0)
    finally:
        frontrun.shutdown()
    assert not any(t.is_alive() for t in workers.threads)


def test_concurrent_explorations_share_the_workers() -> None:
    # Two callers reserve workers from one pool at once: every job must find
    # a worker, or its execution would wait for the run timeout.
    results: list[frontrun.ExploreResult] = []
    errors: list[BaseException] = []

    def alone(c: Counter) -> None:
        total = 0
        for i in range(3):
            total += i

    def caller() -> None:
        try:
            for _ in range(5):
                r = frontrun.explore(
                    Counter, [alone, alone, alone], ok, strategy="random", max_attempts=20
                )
                results.append(r)
        except BaseException as e:
            errors.append(e)

    callers = [threading.Thread(target=caller) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert not any(t.is_alive() for t in callers), "explore callers did not finish in 60 s"
    assert not errors
    assert len(results) == 10
    assert all(r.property_holds is True and r.executions_explored == 20 for r in results)
    assert _explore._pool().stats()[1] == 0


def test_concurrent_explorations_of_shared_objects_keep_their_verdicts() -> None:
    # The object registry is process-wide: explorations from two threads take
    # turns, so each still sees exactly its own accesses.
    results: list[frontrun.ExploreResult] = []

    def caller() -> None:
        for _ in range(3):
            results.append(
                frontrun.explore(
                    Counter, [inc, inc], lambda c: c.value == 2, reproduce_on_failure=0
                )
            )

    callers = [threading.Thread(target=caller) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert not any(t.is_alive() for t in callers), "explore callers did not finish in 60 s"
    assert len(results) == 6
    assert all(r.property_holds is False and r.failure_kind == "invariant" for r in results)


def test_explore_inside_an_explored_thread_is_refused() -> None:
    seen: list[str] = []

    def nested(c: Counter) -> None:
        try:
            frontrun.explore(Counter, [inc], ok)
        except RuntimeError as e:
            seen.append(str(e))

    r = frontrun.explore(Counter, [nested], ok)
    assert r.property_holds is True
    assert seen and "do not nest" in seen[0]


def test_teardown_runs_after_every_execution() -> None:
    torn: list[int] = []
    r = frontrun.explore(
        Counter, [inc, inc], ok, strategy="dpor", teardown=lambda c: torn.append(c.value)
    )
    assert r.property_holds is True
    # One more: the settling run before the exploration (see `_settle`).
    assert r.executions_explored == 4 and len(torn) == 5
    assert all(v in (1, 2) for v in torn)


def test_random_strategy_runs_max_attempts_and_is_no_proof() -> None:
    r = frontrun.explore(Counter, [inc, inc], ok, strategy="random", max_attempts=25, seed=3)
    assert r.executions_explored == 25
    assert r.property_holds is True and r.exhausted is False
    assert "not a proof" in r.explanation


def test_random_strategy_finds_the_lost_update_and_the_seed_is_deterministic() -> None:
    def run() -> frontrun.ExploreResult:
        return explore_interleavings(
            setup=Counter, threads=[inc, inc], invariant=lambda c: c.value == 2, seed=7
        )

    a, b = run(), run()
    assert a.property_holds is False and a.counterexample == b.counterexample
    assert a.executions_explored == b.executions_explored
    again = frontrun.replay(a.counterexample, Counter, [inc, inc], lambda c: c.value == 2)
    assert again.property_holds is False


def test_max_ops_zero_switch_budget_runs_threads_one_after_another() -> None:
    # With no switching budget the running thread always continues, so the
    # lost update (which needs a switch between read and write) never shows.
    r = explore_interleavings(
        setup=Counter, threads=[inc, inc], invariant=lambda c: c.value == 2, max_ops=1, seed=1
    )
    assert r.property_holds is True and r.executions_explored == 200


def test_pct_strategy_is_accepted() -> None:
    r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2, strategy="pct", seed=1)
    assert r.property_holds is False


def test_stuck_thread_times_out_inconclusive_and_is_abandoned() -> None:
    release = threading.Event()  # real: created outside the exploration

    def stuck(c: Counter) -> None:
        release.wait(30)  # real blocking wait, invisible to the scheduler

    frontrun.shutdown()
    before = set(threading.enumerate())
    r = frontrun.explore(Counter, [stuck, inc], ok, timeout_per_run=0.3)
    assert r.property_holds is None
    assert "timeout_per_run" in r.explanation
    # Retired, not idle: shutdown cannot stop it, only its code returning.
    frontrun.shutdown(timeout=0.05)
    stuck_workers = set(threading.enumerate()) - before
    assert len(stuck_workers) == 1
    release.set()
    wait_until_threads_are(before)


def test_setup_errors_propagate() -> None:
    def bad() -> Counter:
        raise OSError("no database")

    with pytest.raises(OSError, match="no database"):
        frontrun.explore(bad, [inc], ok)


def test_interpreter_exits_cleanly_with_an_abandoned_worker() -> None:
    # The stuck worker wakes up while the interpreter shuts down; it must end
    # like any daemon thread, not abort the process.
    script = textwrap.dedent(
        """
        import threading, frontrun
        class C:
            def __init__(self): self.v = 0
        release = threading.Event()
        def stuck(c):
            c.v = 1
            release.wait(5)
        r = frontrun.explore(C, [stuck], lambda c: True, timeout_per_run=0.2)
        print(r.property_holds)
        release.set()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60
    )


def test_idle_workers_are_stopped_at_exit() -> None:
    done = run_script(
        """
        import atexit, threading
        def after_frontrun():  # registered first, so it runs after frontrun's hook
            alive = [t for t in threading.enumerate() if t.name == "frontrun-worker"]
            print("workers alive at exit:", len(alive))
        atexit.register(after_frontrun)
        import frontrun
        class C:
            def __init__(self): self.v = 0
        def inc(c): c.v += 1
        print(frontrun.explore(C, [inc, inc], lambda c: True).property_holds)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "workers alive at exit: 0"]


def test_a_forked_child_starts_its_own_workers() -> None:
    # The parent's idle workers do not exist in the child: counting on them
    # would leave the child's jobs unserved until the run timeout.
    done = run_script(
        """
        import os, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        import frontrun
        class C:
            def __init__(self): self.v = 0
        def inc(c):
            t = c.v
            c.v = t + 1
        def lost(): return frontrun.explore(C, [inc, inc], lambda c: c.v == 2, timeout_per_run=2.0)
        print("parent", lost().property_holds, flush=True)
        pid = os.fork()
        if pid == 0:
            r = lost()
            print("child", r.property_holds, flush=True)
            frontrun.shutdown()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["parent False", "child False", "child exit 0"]


def test_random_cut_short_by_max_executions_is_inconclusive() -> None:
    r = frontrun.explore(
        Counter, [inc, inc], ok, strategy="random", max_attempts=50, max_executions=10, seed=2
    )
    assert r.executions_explored == 10
    assert r.property_holds is None and "max_executions" in r.explanation


def test_lazy_initialisation_does_not_hide_the_race_on_first_explore() -> None:
    """A registry filled on first use (in the first execution only) must not
    make the first exploration replay a different program than it planned:
    the lost update is found on the first explore(), not only the second."""

    class Registry:
        ready = False
        table: ClassVar[dict[int, int]] = {}

    def ensure_ready(reg: type[Registry]) -> None:
        if not reg.ready:
            for i in range(5):
                reg.table[i] = i * i
            reg.ready = True

    def inc(s: SimpleNamespace) -> None:
        ensure_ready(s.reg)
        t = s.value
        s.value = t + 1

    def setup() -> SimpleNamespace:
        return SimpleNamespace(value=0, reg=Registry)

    first = frontrun.explore(setup, [inc, inc], lambda s: s.value == 2)
    assert first.property_holds is False, first.explanation
    assert first.failure_kind == "invariant"
