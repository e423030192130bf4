"""Reliability probes: bad input, faults and misuse, one probe per process.

Each probe runs in a fresh interpreter with a hard timeout, so a hang or an
abort fails its test instead of the whole suite. Every probe checks the exit
status, that nothing was left running (no thread besides the main one after
`frontrun.shutdown()`, no child process), and that the message names the
cause.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass

import pytest

PRELUDE = '''
import os, sys, threading, time
import frontrun

class Counter:
    def __init__(self):
        self.value = 0

def inc(c):
    t = c.value
    c.value = t + 1

def ok(c):
    return True

def done():
    """Report what is left running; the test checks it is nothing."""
    frontrun.shutdown()
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    print("LEFT", extra, flush=True)
'''


@dataclass
class Probe:
    rc: int
    out: str
    err: str
    seconds: float


def probe(body: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Probe:
    """Run `body` (after PRELUDE) in a new interpreter; a hang past `timeout`
    fails the test (the process group is killed, so nothing stays behind)."""
    code = PRELUDE + textwrap.dedent(body)
    # A file, not `-c`: explanations quote source lines.
    with tempfile.NamedTemporaryFile("w", suffix="_probe.py", delete=False) as f:
        f.write(code)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, f.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"probe hung for {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    finally:
        os.unlink(f.name)
    result = Probe(proc.returncode, out, err, time.monotonic() - started)
    # No child process of the probe may outlive it (a forked child reaped).
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        pass
    else:
        os.killpg(proc.pid, 9)
        pytest.fail("the probe left a process running in its group")
    return result


def clean(p: Probe) -> None:
    """Exit status 0, nothing left running, no Rust panic on stderr."""
    assert p.rc == 0, f"rc {p.rc}\nstdout:\n{p.out}\nstderr:\n{p.err}"
    assert "LEFT []" in p.out, p.out + p.err
    assert "panicked" not in p.err and "RUST_BACKTRACE" not in p.err, p.err


# --- nesting ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["setup", "invariant", "teardown"])
def test_explore_nested_in_setup_invariant_or_teardown_raises_at_once(where: str) -> None:
    p = probe(
        f"""
        def nested(*_):
            frontrun.explore(Counter, [inc], ok, max_executions=1)
        kwargs = dict(setup=Counter, invariant=ok, teardown=None)
        if "{where}" == "setup":
            kwargs["setup"] = lambda: (nested(), Counter())[1]
        elif "{where}" == "invariant":
            kwargs["invariant"] = nested
        else:
            kwargs["teardown"] = nested
        try:
            frontrun.explore(kwargs["setup"], [inc], kwargs["invariant"],
                             teardown=kwargs["teardown"], max_executions=1)
        except RuntimeError as e:
            print("ERR", e)
        done()
        """,
        timeout=30,
    )
    clean(p)
    assert "ERR" in p.out and "do not nest" in p.out, p.out


# --- bad options -----------------------------------------------------------


def test_infinite_timeouts_mean_no_limit() -> None:
    p = probe(
        """
        for kw in ({"timeout_per_run": float("inf")}, {"total_timeout": float("inf")},
                   {"total_timeout": 1e300}, {"timeout_per_run": 1e300}):
            r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2, **kw)
            print("RESULT", r.property_holds)
        done()
        """
    )
    clean(p)
    assert p.out.count("RESULT False") == 4, p.out


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("timeout_per_run", 'float("nan")', "ValueError: timeout_per_run must be a number"),
        ("total_timeout", 'float("nan")', "ValueError: total_timeout must be a number"),
        ("total_timeout", "-1.0", "ValueError: total_timeout must be > 0"),
        ("max_executions", "2**64", "ValueError: max_executions must be at most"),
        ("preemption_bound", "2**40", "ValueError: preemption_bound must be at most"),
        ("reproduce_on_failure", "2**33", "ValueError: reproduce_on_failure must be at most"),
        ("seed", "2**64", "ValueError: seed must be an int between"),
    ],
)
def test_bad_numbers_are_value_errors_naming_the_option(
    option: str, value: str, match: str
) -> None:
    p = probe(
        f"""
        try:
            frontrun.explore(Counter, [inc], ok, {option}={value})
        except Exception as e:
            print(f"{{type(e).__name__}}: {{e}}")
        done()
        """
    )
    clean(p)
    assert match in p.out, p.out


# --- replay tokens ---------------------------------------------------------


def test_forged_and_old_tokens_are_refused_without_allocating() -> None:
    p = probe(
        """
        import base64, struct
        def fnv(b):
            h = 0x811C9DC5
            for x in b:
                h = ((h ^ x) * 0x01000193) & 0xFFFFFFFF
            return h
        def varint(v):
            out = bytearray()
            while True:
                b, v = v & 0x7F, v >> 7
                out.append(b | (0x80 if v else 0))
                if not v:
                    return bytes(out)
        body = varint(2**40) + varint(1) + varint(0) + varint(2**40)
        forged = "v2:" + base64.urlsafe_b64encode(body + struct.pack("<I", fnv(body))).decode().rstrip("=")
        for tok in ("v1:AICAgIAQ9g", forged, "v2:" + "A" * 100_000):
            try:
                frontrun.replay(tok, Counter, [inc], ok)
            except ValueError as e:
                print("ERR", str(e)[:300])
        done()
        """
    )
    clean(p)
    lines = [line for line in p.out.splitlines() if line.startswith("ERR")]
    assert len(lines) == 3, p.out
    assert "older frontrun" in lines[0]
    assert "more than the" in lines[1] and "steps" in lines[1]
    assert "invalid replay token" in lines[2] and len(lines[2]) < 300


def test_replay_none_is_a_type_error() -> None:
    p = probe(
        """
        r = frontrun.explore(Counter, [inc, inc], lambda c: c.value >= 1)
        assert r.counterexample is None
        try:
            frontrun.replay(r.counterexample, Counter, [inc, inc], ok)
        except TypeError as e:
            print("ERR", e)
        done()
        """
    )
    clean(p)
    assert "ERR the replay token must be a str" in p.out, p.out


def test_diverged_replay_is_not_a_pass() -> None:
    p = probe(
        """
        r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2)
        assert r.property_holds is False
        def other(c):  # the code changed: one step instead of two
            c.value += 0
        again = frontrun.replay(r.counterexample, Counter, [other], ok)
        print("HOLDS", again.property_holds, "DIVERGED", again.diverged)
        print("NOTES", again.explanation.count("diverged from the token"))
        same = frontrun.replay(r.counterexample, Counter, [inc, inc], lambda c: c.value == 2)
        print("SAME", same.property_holds, same.diverged)
        done()
        """
    )
    clean(p)
    assert "HOLDS None DIVERGED True" in p.out, p.out
    assert "NOTES 1" in p.out, p.out
    assert "SAME False False" in p.out, p.out


# --- every exception kept ---------------------------------------------------


def test_every_threads_exception_is_reported() -> None:
    p = probe(
        """
        def boom(c):
            raise KeyError("first-problem")
        def bang(c):
            raise ZeroDivisionError("second-problem")
        r = frontrun.explore(Counter, [boom, bang], ok)
        print("KIND", r.failure_kind)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "KIND exception" in p.out
    assert "first-problem" in p.out and "second-problem" in p.out, p.out
    assert "2 threads raised" in p.out
    # Tracebacks start at the user's function: no frame of frontrun's.
    assert 'in boom\n    raise KeyError("first-problem")' in p.out, p.out
    assert "/frontrun/" not in p.out and "_run_job" not in p.out, p.out


def test_invariant_without_truth_value_is_a_failure_not_an_escape() -> None:
    p = probe(
        """
        class Array:
            def __bool__(self):
                raise ValueError("The truth value of an array is ambiguous")
            def __repr__(self):
                return "Array([1, 2])"
        r = frontrun.explore(Counter, [inc], lambda c: Array())
        print("KIND", r.failure_kind, r.property_holds)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "KIND invariant False" in p.out, p.out
    assert "Array([1, 2]), which has no truth value" in p.out, p.out


def test_teardown_that_raises_is_reported_and_keeps_an_earlier_failure() -> None:
    p = probe(
        """
        def bad_teardown(c):
            raise OSError("cannot close the connection")
        r = frontrun.explore(Counter, [inc], ok, teardown=bad_teardown)
        print("ALONE", r.failure_kind, r.property_holds)
        print(r.explanation)
        def teardown_failing_on_lost_update(c):
            if c.value != 2:
                raise OSError("cannot close the connection")
        r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2,
                             teardown=teardown_failing_on_lost_update)
        print("AFTER", r.failure_kind, r.property_holds)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "ALONE teardown False" in p.out, p.out
    assert "AFTER invariant False" in p.out, p.out
    assert p.out.count("cannot close the connection") >= 2, p.out


def test_teardown_runs_after_deadlocks_and_replays_of_them() -> None:
    p = probe(
        """
        calls = {"setup": 0, "teardown": 0}
        class Two:
            def __init__(self):
                calls["setup"] += 1
                self.a = threading.Lock()
                self.b = threading.Lock()
        def ab(s):
            with s.a:
                with s.b:
                    pass
        def ba(s):
            with s.b:
                with s.a:
                    pass
        def td(s):
            calls["teardown"] += 1
        r = frontrun.explore(Two, [ab, ba], lambda s: True, teardown=td, reproduce_on_failure=2)
        print("KIND", r.failure_kind, r.reproduced)
        print("CALLS", calls["setup"], calls["teardown"])
        done()
        """
    )
    clean(p)
    assert "KIND deadlock 2" in p.out, p.out
    line = next(x for x in p.out.splitlines() if x.startswith("CALLS"))
    _, setups, teardowns = line.split()
    assert setups == teardowns and int(setups) >= 3, line


def test_teardown_runs_after_a_timed_out_execution() -> None:
    p = probe(
        """
        calls = {"setup": 0, "teardown": 0}
        def setup():
            calls["setup"] += 1
            return Counter()
        def td(c):
            calls["teardown"] += 1
        def slow(c):
            time.sleep(0)  # a scheduling point
            t0 = os.times().elapsed  # real time: explored threads read a virtual clock
            while os.times().elapsed - t0 < 1.0:  # busy, out of frontrun's control
                pass
        r = frontrun.explore(setup, [slow], ok, teardown=td, timeout_per_run=0.2)
        print("HOLDS", r.property_holds)
        print("CALLS", calls["setup"], calls["teardown"])
        time.sleep(1.2)
        done()
        """
    )
    clean(p)
    assert "HOLDS None" in p.out, p.out
    assert "CALLS 1 1" in p.out, p.out


# --- fork and signals --------------------------------------------------------


def test_explore_in_a_child_forked_by_an_explored_thread() -> None:
    p = probe(
        """
        def forker(c):
            pid = os.fork()
            if pid == 0:
                try:
                    r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2)
                    print("CHILD", r.property_holds, flush=True)
                    code = 0
                except BaseException as e:
                    print("CHILD-ERR", type(e).__name__, e, flush=True)
                    code = 1
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            c.status = status
        r = frontrun.explore(Counter, [forker], lambda c: c.status == 0, max_executions=1)
        print("PARENT", r.property_holds)
        done()
        """
    )
    clean(p)
    assert "CHILD False" in p.out, p.out + p.err
    assert "PARENT True" in p.out, p.out + p.err


def test_ctrl_c_ends_a_cooperative_lock_wait_outside_explorations() -> None:
    p = probe(
        """
        import _thread
        from frontrun import _native
        lock = _native.CoopLock(False)
        lock.acquire()
        threading.Timer(0.3, _thread.interrupt_main).start()
        try:
            lock.acquire(timeout=20)
            print("ACQUIRED")
        except KeyboardInterrupt:
            print("INTERRUPTED")
        done()
        """,
        timeout=30,
    )
    clean(p)
    assert "INTERRUPTED" in p.out, p.out
    assert p.seconds < 15, p.seconds


# --- honest explanations ------------------------------------------------------


def test_failure_without_interleaving_is_not_called_a_race() -> None:
    p = probe(
        """
        def always(c):
            inc(c)
            raise ValueError("always")
        r = frontrun.explore(Counter, [always, always], ok)
        print(r.explanation)
        def deep(c):
            def f(n):
                return f(n + 1)
            f(0)
        r = frontrun.explore(Counter, [deep, inc], ok)
        print(r.explanation[-2000:])
        done()
        """
    )
    clean(p)
    assert p.out.count("fails without any interleaving: not a concurrency bug") == 2, p.out
    assert "write-write race" not in p.out and "order violation" not in p.out, p.out


def test_order_dependence_is_named_as_such() -> None:
    p = probe(
        """
        import queue
        def consumer(q):
            q.get_nowait()
        def producer(q):
            q.put(1)
        r = frontrun.explore(queue.Queue, [consumer, producer], lambda q: True)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "in this order but not in the reverse order" in p.out, p.out


def test_a_single_blocked_waiter_is_not_a_cycle() -> None:
    p = probe(
        """
        import queue
        def get(q):
            q.get()
        r = frontrun.explore(queue.Queue, [get], lambda q: True)
        print("KIND", r.failure_kind)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "KIND deadlock" in p.out
    assert "wait for each other in a cycle" not in p.out, p.out
    assert "blocked forever, not a lock cycle: thread 'get'" in p.out, p.out
    assert "waits for Condition.notify" in p.out, p.out


def test_explanation_and_reproduction_count_against_total_timeout() -> None:
    p = probe(
        """
        def slow_then_fail(c):
            inc(c)
            # Real elapsed time: explored threads read a virtual clock.
            t0 = os.times().elapsed
            while os.times().elapsed - t0 < 1.0:
                pass
            raise ValueError("late")
        t0 = time.monotonic()
        r = frontrun.explore(Counter, [slow_then_fail, inc], ok, total_timeout=0.3)
        took = time.monotonic() - t0
        print("KIND", r.failure_kind, "TOOK", round(took, 1), "REPRO", r.reproduce_attempts)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "KIND exception" in p.out and "REPRO 0" in p.out, p.out
    assert "explanation shortened" in p.out, p.out
    assert "ValueError: late" in p.out, p.out


def test_a_long_failing_trace_is_explained_within_total_timeout() -> None:
    # Explaining this failure took 20 s (cubic in the trace length) whatever
    # total_timeout said. Running the 64,000 traced accesses alone takes
    # seconds on a loaded machine, so the bound is relative to that.
    p = probe(
        """
        def many(c):
            for _ in range(32_000):
                c.value += 1
        def many_then_raise(c):
            many(c)
            raise ValueError("after 32000 increments")
        t0 = time.monotonic()
        frontrun.explore(Counter, [many, inc], ok, total_timeout=3, max_executions=1)
        print("PLAIN", round(time.monotonic() - t0, 1))
        t0 = time.monotonic()
        r = frontrun.explore(Counter, [many_then_raise, inc], ok, total_timeout=3)
        print("TOOK", round(time.monotonic() - t0, 1), "KIND", r.failure_kind)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    plain = float(p.out.split("PLAIN ")[1].split()[0])
    took = float(p.out.split("TOOK ")[1].split()[0])
    assert took < 2 * plain + 3.0, p.out[:2000]
    assert "KIND exception" in p.out and "ValueError: after 32000 increments" in p.out, p.out[:2000]


def test_a_timed_queue_get_under_virtual_time_ends_promptly() -> None:
    # Queue.get(timeout=) loops until a real-time deadline: under virtual time
    # it used to spin until killed, past total_timeout.
    p = probe(
        """
        import queue
        def get(q):
            q.get(timeout=0.5)
        t0 = time.monotonic()
        r = frontrun.explore(queue.Queue, [get], lambda q: True, total_timeout=5)
        print("TOOK", round(time.monotonic() - t0, 1), "KIND", r.failure_kind)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    took = float(p.out.split("TOOK ")[1].split()[0])
    assert took < 5.0, p.out
    assert "KIND exception" in p.out and "raise Empty" in p.out, p.out


def test_traces_name_the_users_primitives_not_frontrun_internals() -> None:
    p = probe(
        """
        class Shared:
            def __init__(self):
                self.lock = threading.Lock()
                self.cond = threading.Condition()
                self.value = 0
        def racy(s):
            _ = (repr(s.lock), repr(s.cond))
            with s.lock:
                v = s.value
            s.value = v + 1
        r = frontrun.explore(Shared, [racy, racy], lambda s: s.value == 2)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        def waiter(s):
            with s.cond:
                s.cond.wait()
        r = frontrun.explore(Shared, [waiter], lambda s: True)
        print(r.explanation)
        done()
        """
    )
    clean(p)
    assert "HOLDS False" in p.out and "blocked forever" in p.out, p.out
    assert "Coop" not in p.out and "_native" not in p.out, p.out


# --- stuck threads ------------------------------------------------------------


def test_a_thread_in_an_endless_python_loop_is_stopped_after_its_timeout() -> None:
    p = probe(
        """
        def spin(c):
            c.value = 1
            while True:
                pass
        t0 = time.monotonic()
        r = frontrun.explore(Counter, [spin], ok, timeout_per_run=0.5, max_executions=1)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        print("NOT-STOPPED", frontrun.shutdown(timeout=2.0))
        done()
        """
    )
    clean(p)
    assert "HOLDS None" in p.out, p.out
    assert "thread 'spin' is running at " in p.out and ": while True:" in p.out, p.out
    assert "NOT-STOPPED []" in p.out, p.out


def test_a_thread_blocked_in_c_is_reported_with_where_it_blocks() -> None:
    p = probe(
        """
        real = threading.Lock()  # created before the exploration: not frontrun's
        real.acquire()
        def blocked(c):
            c.value = 1
            with real:
                pass
        r = frontrun.explore(Counter, [blocked], ok, timeout_per_run=0.5, max_executions=1)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        print("NOT-STOPPED", frontrun.shutdown(timeout=0.5))
        real.release()  # the stuck thread can go on, and is stopped then
        time.sleep(0.5)
        done()
        """
    )
    clean(p)
    assert "HOLDS None" in p.out, p.out
    assert "thread 'blocked' is running at " in p.out and ": with real:" in p.out, p.out
    # The lock is named, and said to be a real one held by someone.
    assert "it waits for `real`, a threading.Lock created outside setup()" in p.out, p.out
    assert "could not be stopped ('blocked')" in p.out, p.out
    assert "NOT-STOPPED ['frontrun-worker" in p.out and "in blocked" in p.out, p.out


def test_a_real_rlock_held_across_the_exploration_names_its_holder() -> None:
    p = probe(
        """
        real = threading.RLock()  # created before the exploration: not frontrun's
        real.acquire()
        def blocked(c):
            c.value = 1
            real.acquire()
        r = frontrun.explore(Counter, [blocked], ok, timeout_per_run=0.5, max_executions=1)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        real.release()  # the stuck thread can go on, and is stopped then
        time.sleep(0.5)
        done()
        """
    )
    clean(p)
    assert "HOLDS None" in p.out, p.out
    assert ": real.acquire()" in p.out, p.out
    assert (
        "it waits for `real`, a threading.RLock created outside setup() (a real lock: "
        "frontrun does not schedule it), held by thread 'MainThread', now at " in p.out
    ), p.out
    assert "in <module>" in p.out.split("held by thread 'MainThread', now at ")[1], p.out


def test_a_real_lock_acquired_by_setup_is_named_with_its_acquisition_site() -> None:
    body = """
        real = threading.Lock()  # created outside setup: a real lock
        def setup():
            real.acquire()  # ACQUIRED
            return Counter()
        def blocked(c):
            c.value = 1
            with real:
                pass
        r = frontrun.explore(setup, [blocked], ok, timeout_per_run=0.5, max_executions=1)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        real.release()  # the stuck thread can go on, and is stopped then
        time.sleep(0.5)
        done()
        """
    p = probe(body)
    clean(p)
    assert "HOLDS None" in p.out, p.out
    lines = (PRELUDE + textwrap.dedent(body)).splitlines()
    acquired = next(n for n, x in enumerate(lines, 1) if x.endswith("# ACQUIRED"))
    assert "it waits for `real`, a threading.Lock created outside setup()" in p.out, p.out
    assert f"_probe.py:{acquired} in setup and not released" in p.out, p.out


def test_a_real_lock_held_by_an_explored_thread_names_its_with() -> None:
    # This used to say only "thread 'holder' waited for its turn longer than
    # timeout_per_run".
    body = """
        real = threading.Lock()  # created outside setup: a real lock
        class S:
            def __init__(self):
                self.ev = threading.Event()
        def holder(s):
            with real:  # TAKEN
                s.ev.wait()
        def other(s):
            with real:
                pass
            s.ev.set()
        r = frontrun.explore(S, [holder, other], ok, timeout_per_run=0.5, max_executions=1)
        print("HOLDS", r.property_holds)
        print(r.explanation)
        done()
        """
    p = probe(body)
    clean(p)
    assert "HOLDS None" in p.out, p.out
    lines = (PRELUDE + textwrap.dedent(body)).splitlines()
    taken = next(n for n, x in enumerate(lines, 1) if x.endswith("# TAKEN"))
    assert "it waits for `real`, a threading.Lock created outside setup()" in p.out, p.out
    assert "held by thread 'holder' inside its `with` at " in p.out, p.out
    assert f"_probe.py:{taken} in holder, now at " in p.out, p.out


def test_a_thread_blocked_inside_the_stdlib_is_shown_at_its_own_line() -> None:
    p = probe(
        """
        import queue
        q = queue.Queue()  # created before the exploration: a real Condition inside
        def blocked(c):
            c.value = 1
            q.get()
        r = frontrun.explore(Counter, [blocked], ok, timeout_per_run=0.5, max_executions=1)
        print(r.explanation)
        q.put(1)  # the stuck thread can go on, and is stopped then
        time.sleep(0.5)
        done()
        """
    )
    clean(p)
    # Not threading.py's `waiter.acquire()`: the user's call that waits.
    assert "thread 'blocked' is running at " in p.out and "in blocked: q.get()" in p.out, p.out
    assert "threading.py" not in p.out, p.out


def test_stuck_workers_do_not_stack_past_the_maximum() -> None:
    p = probe(
        """
        real = threading.Lock()
        real.acquire()
        def blocked(c):
            with real:
                pass
        for i in range(4):
            try:
                r = frontrun.explore(Counter, [blocked], ok, timeout_per_run=0.2, max_executions=1)
                print("RUN", i, r.property_holds)
            except RuntimeError as e:
                print("REFUSED", i, e)
        stuck = sum(t.name == "frontrun-worker" for t in threading.enumerate())
        print("WORKERS", stuck)
        real.release()
        time.sleep(0.5)
        done()
        """,
        env={"FRONTRUN_MAX_WORKERS": "2"},
    )
    assert p.rc == 0, p.err
    assert "REFUSED 2 frontrun has 2 worker threads alive" in p.out, p.out
    assert "WORKERS 2" in p.out, p.out
    assert "LEFT []" in p.out, p.out


def test_ctrl_c_ends_an_exploration_within_a_second_while_a_thread_blocks_in_c() -> None:
    p = probe(
        """
        import _thread
        real = threading.Lock()
        real.acquire()
        def blocked(c):
            with real:
                pass
        threading.Timer(0.5, _thread.interrupt_main).start()
        t0 = time.monotonic()
        try:
            frontrun.explore(Counter, [blocked], ok, timeout_per_run=60, max_executions=1)
        except KeyboardInterrupt:
            print("INTERRUPTED after", round(time.monotonic() - t0, 2))
        real.release()
        time.sleep(0.5)
        done()
        """,
        timeout=30,
    )
    clean(p)
    line = next((x for x in p.out.splitlines() if x.startswith("INTERRUPTED")), "")
    assert line, p.out
    assert float(line.split()[-1]) < 1.5 + 0.5, line


def test_a_panic_in_the_line_tracer_is_a_normal_exception() -> None:
    result = probe(
        """
        from frontrun import _native
        from frontrun.common import Schedule, Step
        from frontrun.trace_markers import TraceExecutor, ThreadFailedError

        def body():
            x = 1
            y = x + 1  # frontrun: m
            return y

        ex = TraceExecutor(Schedule([Step("t", "m")]))
        _native._panic_on_next_traced_line(True)
        ex.run("t", body)
        try:
            ex.wait(timeout=10)
        except ThreadFailedError as e:
            cause = e.__cause__
            print("CAUGHT", type(cause).__name__, isinstance(cause, Exception), cause)
        try:
            _native._panic_in_entry()
        except Exception as e:
            print("ENTRY", type(e).__name__, e)
        done()
        """
    )
    assert result.rc == 0, result.err
    assert (
        "CAUGHT RuntimeError True frontrun internal error: test-only panic in the line tracer"
        in (result.out)
    )
    assert (
        "ENTRY RuntimeError frontrun internal error: test-only panic at an FFI entry" in result.out
    )
    assert "LEFT []" in result.out
