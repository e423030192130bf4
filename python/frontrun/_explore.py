"""`explore`, `replay` and the result they return."""

from __future__ import annotations

import atexit
import contextlib
import gc
import inspect
import math
import os
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from frontrun import _coop, _native
from frontrun.db import _hooks as _db_hooks

if TYPE_CHECKING:
    from typing_extensions import Unpack

Strategy = Literal["mixed", "portfolio", "iterative", "dpor", "random", "pct"]
_STRATEGIES = ("mixed", "portfolio", "iterative", "dpor", "random", "pct")
SearchOrder = Literal["lowest-first", "highest-first", "random"]
_SEARCH_ORDERS = ("lowest-first", "highest-first", "random")
Substrate = Literal["threads", "coroutines"]
_SUBSTRATES = ("threads", "coroutines")


_progress_default = True
"""What `progress=None` means; the pytest plugin sets it to whether `-v` was
given, so a quiet test run stays quiet."""


def set_progress_default(show: bool) -> None:
    """Make `progress=None` show progress or not (the pytest plugin calls
    this with whether `-v` was given)."""
    global _progress_default
    _progress_default = bool(show)


def default_substrate() -> str:
    """The substrate used when none is given: `FRONTRUN_SUBSTRATE` if set
    (how the test suite runs everything on either one), else "threads"."""
    return os.environ.get("FRONTRUN_SUBSTRATE") or "threads"


_COROUTINES_SUPPORTED = sys.version_info >= (3, 11)
"""A greenlet parks inside the trace callback; leaving the interpreter's
"tracing" state there needs `PyThreadState_LeaveTracing` (3.11+)."""
_warned_fallback = False


def _usable_substrate(substrate: str) -> str:
    """The substrate that will run: "coroutines" falls back to "threads"
    where it cannot run (CPython 3.10), with one warning per process."""
    global _warned_fallback
    if substrate == "coroutines" and not _COROUTINES_SUPPORTED:
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                "frontrun: the coroutine substrate needs CPython 3.11 or later; "
                "running explored threads on OS threads instead",
                RuntimeWarning,
                stacklevel=4,
            )
        return "threads"
    return substrate


_JOIN_TIMEOUT = 2.0


@dataclass
class ExploreResult:
    """The verdict of an exploration (see `frontrun.explore`)."""

    property_holds: bool | None
    """True: nothing failed and the search finished; False: a failure; None: cut short."""
    executions_explored: int
    exhausted: bool
    """True only if DPOR ran every interleaving with no preemption bound."""
    failure_kind: str | None
    """"invariant", "exception", "deadlock" or "teardown" when `property_holds` is False."""
    explanation: str
    counterexample: str | None
    """Replay token of the failing interleaving, for `frontrun.replay`."""
    reproduced: int
    reproduce_attempts: int
    diverged: bool = False
    """True when a replay could not follow its token (the code, setup or
    threads changed), or when a systematic search's execution did not repeat
    the steps an earlier one recorded (state outlived an execution): what ran
    is another program or interleaving, so `property_holds` is None unless it
    failed, `exhausted` is False, and the explanation names the first object
    and line that differed."""
    preemption_bound_found: int | None = None
    """With the default, portfolio or iterative search: the preemption bound of
    the DPOR pass that found the failure (None if the unbounded pass or a
    randomized run found it, or with another strategy)."""
    found_by: str | None = None
    """Which member of the search ran the failing execution: "dpor bound 1",
    "dpor unbounded", "dpor", "random", "pct depth 2"… (None if nothing failed)."""
    repeated_executions: int = 0
    """Executions that ran an interleaving (Mazurkiewicz trace) an earlier one
    already ran: the price of searching in passes of growing bounds."""
    preemptions: int | None = None
    """Preemptions (switches away from a thread that could have continued) of
    the reported, minimised failing schedule; None if it could not be measured."""
    context_switches: int | None = None
    """Context switches of the reported failing schedule."""
    shrink_replays: int = 0
    """Replays spent minimising the failing schedule (at most `shrink_budget`)."""
    substrate: str = "threads"
    """What ran the explored threads: "threads" or "coroutines" (see `explore`)."""
    _replay_target: tuple[Any, Any, Any, Any] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def _of(cls, outcome: _native.ExploreOutcome, substrate: str) -> ExploreResult:
        """The result for what `_native._explore` found."""
        given = {f.name: getattr(outcome, f.name) for f in fields(cls) if hasattr(outcome, f.name)}
        return cls(**given, substrate=substrate)

    def regression_test(self, name: str | None = None) -> str:
        """Source of a pytest test that replays this failure and asserts that it
        still fails: paste it into a test module. It is runnable as pasted when
        `setup`, the threads and the invariant are importable module-level
        names (a lambda or a nested function must be moved to module level
        first; such names are marked in the source)."""
        if self.counterexample is None or self.property_holds is not False:
            raise ValueError("regression_test() needs a failing result (property_holds is False)")
        return _regression_source(self, name)

    def assert_holds(self) -> None:
        """Raise `AssertionError` with the explanation unless the property holds."""
        if self.property_holds is not True:
            raise AssertionError(self.explanation)


_IDLE_EXIT = 1.0
"""Seconds an idle worker waits for a job before leaving by itself."""


_MAX_WORKERS = int(os.environ.get("FRONTRUN_MAX_WORKERS", "64"))
"""Most worker threads alive at once, stuck ones included: an exploration
refuses to start rather than stack more threads on stuck ones."""

_started: list[threading.Thread] = []
"""Every worker thread started and not known to have exited, across
`shutdown()`s: a worker stuck in C outlives its pool."""


def _alive_workers() -> list[threading.Thread]:
    _started[:] = [t for t in _started if _coop._REAL_IS_ALIVE(t)]
    return list(_started)


def _where(t: threading.Thread) -> str:
    """`file:line in function` of a thread's innermost frame."""
    frame = sys._current_frames().get(t.ident or -1)
    if frame is None:
        return "in C code, outside Python"
    code = frame.f_code
    return f"at {os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"


class _Workers:
    """The process's worker threads, shared by every exploration.

    Starting threads per exploration would cost more than the executions
    themselves; idle workers leave after `_IDLE_EXIT` seconds, at `shutdown()`
    and at interpreter exit.
    """

    def __init__(self, idle_exit: float = _IDLE_EXIT) -> None:
        self.threads: list[threading.Thread] = []
        """The threads this pool started (alive or not)."""
        self.pool = _native.WorkerPool(self._spawn, idle_exit)

    def _spawn(self, pool: Any) -> None:
        # No cap here: an exploration of 100 threads needs 100 workers. The
        # refusal to stack more workers on stuck ones happens once, before an
        # exploration starts (`_check_capacity`), where idle and stuck differ.
        t = threading.Thread(target=_serve, args=(pool,), name="frontrun-worker", daemon=True)
        _coop._REAL_START(t)
        _started.append(t)
        self.threads = [w for w in self.threads if _coop._REAL_IS_ALIVE(w)] + [t]

    def close(self, timeout: float) -> list[str]:
        self.pool.shutdown()
        deadline = time.monotonic() + timeout
        for t in _alive_workers():
            _coop._REAL_JOIN(t, max(deadline - time.monotonic(), 0.0))
        # Workers stuck in user code (a run timeout) stay behind as daemons.
        return [f"{t.name} (ident {t.ident}) {_where(t)}" for t in _alive_workers()]


def _too_many(alive: list[threading.Thread]) -> str:
    where = "; ".join(f"{t.name} {_where(t)}" for t in alive[:5])
    return (
        f"frontrun has {len(alive)} worker threads alive, the most FRONTRUN_MAX_WORKERS "
        f"({_MAX_WORKERS}) allows; threads stuck in code whose execution timed out are "
        f"among them ({where}). Refusing to start more: fix the code that blocks, or "
        "raise FRONTRUN_MAX_WORKERS"
    )


_workers: _Workers | None = None
_workers_lock = _coop._REAL_LOCK()


def _pool() -> Any:
    """The shared worker pool, created on first use."""
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = _Workers()
        return _workers.pool


def _check_capacity(needed: int) -> None:
    """Refuse to start an exploration that would push the worker threads
    past `_MAX_WORKERS` because of stuck ones."""
    stuck = [t for t in _alive_workers() if not _idle(t)]
    if stuck and len(stuck) + needed > _MAX_WORKERS:
        raise RuntimeError(_too_many(stuck))


def _idle(t: threading.Thread) -> bool:
    """Whether a worker waits for a job (its innermost Python frame is
    `_serve`'s, in the pool's wait); between explorations, a worker that is
    not idle is stuck in the code of an execution that ended."""
    frame = sys._current_frames().get(t.ident or -1)
    return frame is None or frame.f_code is _serve.__code__


def shutdown(timeout: float = _JOIN_TIMEOUT) -> list[str]:
    """Stop frontrun's idle worker threads and wait (up to `timeout` seconds
    in all) for them to exit. Explorations started later start new ones.
    Idle workers also leave by themselves after a second, and at exit.

    Returns the threads it could not stop, with where each one is: workers
    stuck in code whose execution timed out (blocked in C, or an endless
    loop that swallowed the stop request). Empty when all stopped."""
    global _workers
    with _workers_lock:
        workers, _workers = _workers, None
    if workers is not None:
        return workers.close(timeout)
    deadline = time.monotonic() + timeout
    for t in _alive_workers():
        _coop._REAL_JOIN(t, max(deadline - time.monotonic(), 0.0))
    return [f"{t.name} (ident {t.ident}) {_where(t)}" for t in _alive_workers()]


def _forget_workers() -> None:
    # A forked child has none of its parent's threads: start afresh.
    global _workers, _workers_lock
    _workers = None
    _workers_lock = _coop._REAL_LOCK()
    _started.clear()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_workers)


# Set on the thread running an exploration (its setup, invariant, teardown).
# (Explored threads are recognised by `_native._coop_scheduled()`: they see a
# fresh `threading.local` state.)
_controlling = threading.local()
# The object registry and the patched primitives are process-wide, so
# explorations started from several threads take turns.
_exploring = _coop._REAL_LOCK()


def _forget_exploration() -> None:
    # A child forked from inside an exploration (by an explored thread, or by
    # setup) inherits none of its threads: the lock's holder and the worker
    # the child was forked from are gone, and the child starts afresh.
    global _exploring, _controlling
    _exploring = _coop._REAL_LOCK()
    _controlling = threading.local()
    _native._forget_exploration_after_fork()


os.register_at_fork(after_in_child=_forget_exploration)


def _serve(pool: Any) -> None:
    """A worker thread: run explored threads' code until it is sent away.

    The user's function is called from here, not from Rust (see `JobHandle`).
    A timed-out execution stops its threads with an asynchronous
    `ExplorationAborted`; `job.end` withdraws one that arrives too late, and
    the `try` covers the instructions between the call and `end`.
    """
    previous = None
    while (job := pool.next_job(previous)) is not None:
        if job.end(_run_job(job)):
            pool.worker_exit(job)
            return
        previous = job


def _run_coroutine_job(job: Any) -> None:
    """The body of a coroutine-substrate greenlet (`driver/coro.rs`): run
    an explored thread's job like one turn of `_serve`'s loop, then hand
    the exploring thread back to the hub and wait there for the next job
    (the hub reuses finished greenlets)."""
    from greenlet import getcurrent

    current = getcurrent()
    while True:
        job.end(_run_job(job))
        job = None
        job = current.parent.switch()


def _run_job(job: Any) -> BaseException | None:
    """Run one explored thread's call; its exception is that thread's
    failure (returned, for `job.end`)."""
    try:
        call = job.begin()
        if call is not None:
            fn, args = call
            del call
            try:
                returned = fn(*args)
                if isinstance(returned, _UNRUN):
                    returned.close()  # no "never awaited" warning on top
                    raise TypeError(_UNRUN_MESSAGE)
                del returned
            finally:
                del fn, args
    except BaseException as e:  # reported as that thread's failure
        # Its traceback starts at the user's function, not in frontrun.
        tb = e.__traceback__
        if tb is not None and tb.tb_frame.f_code is _run_job.__code__:
            e.__traceback__ = tb.tb_next
        return e
    return None


_UNRUN = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
_UNRUN_MESSAGE = (
    "an explored thread returned a generator or coroutine without running its body: "
    "pass a plain function (async code is not supported yet)"
)


def _check_callable(what: str, f: object) -> None:
    if not callable(f):
        raise TypeError(f"{what} must be callable, got {type(f).__name__}: {f!r}")


def _check_thread_function(what: str, f: object) -> None:
    """Calling a generator or `async def` function runs none of its body: the
    exploration would pass without testing anything."""
    _check_callable(what, f)
    kind = (
        "a generator function"
        if inspect.isgeneratorfunction(f)
        else "a coroutine function (async def)"
        if inspect.iscoroutinefunction(f)
        else "an async generator function"
        if inspect.isasyncgenfunction(f)
        else None
    )
    if kind is not None:
        raise TypeError(
            f"{what} is {kind}: calling it would return without running its body; "
            "pass a plain function (async code is not supported yet)"
        )


_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


def _check_limit(
    name: str,
    value: float | None,
    *,
    integer: bool,
    zero_ok: bool = False,
    maximum: int = _U64_MAX,
) -> None:
    """Refuse a bad option naming it. Counts are ints up to `maximum`;
    durations are numbers of seconds, `inf` meaning no limit."""
    if value is None:
        return
    if isinstance(value, bool) or (integer and not isinstance(value, int)):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds (inf for no limit), got nan")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")
    if integer and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")


class ReplayOptions(TypedDict, total=False):
    """Options of every entry point. Their defaults live in one place,
    `frontrun._native.ExploreOptions`."""

    timeout_per_run: float
    """Seconds one execution may run before it is stopped (default 5.0)."""
    substrate: Substrate | None
    """What runs the explored threads (see `explore`); None (the default)
    takes `FRONTRUN_SUBSTRATE`, else "threads"."""
    full_frames: bool
    """Explanation lines list the library frames below the user's line too
    (default False: only the innermost frame of the user's own code)."""


class InterleavingOptions(ReplayOptions, total=False):
    """Options of a search by sampling (`explore_interleavings`)."""

    max_attempts: int
    """Executions a sampling strategy runs (default 200)."""
    max_ops: int | None
    """Scheduling points per sampled execution at which a switch may happen;
    after it the running thread continues while it can (default: no cap)."""
    seed: int | None
    """Seed of sampling and of `search_order="random"`."""
    reproduce_on_failure: int
    """Replays of the counterexample that count how often it fails (default 10)."""
    progress: bool | None
    """Show the progress of an exploration longer than 2 s on stderr; None
    (the default) shows it, except under pytest without `-v`."""


class DporOptions(InterleavingOptions, total=False):
    """Options of a systematic search (`explore_dpor`)."""

    max_executions: int | None
    """Executions to run at most (default: no cap)."""
    preemption_bound: int | None
    """Run only the schedules with at most this many preemptions."""
    total_timeout: float | None
    """Seconds the whole exploration may take (default: no limit)."""
    stop_on_first: bool
    """Stop at the first failure (default True)."""
    search_order: SearchOrder
    """Order DPOR tries threads in at free choices (default "lowest-first")."""
    shrink_budget: int
    """Replays to spend minimising a failing schedule (default 128; 0: off)."""


class Options(DporOptions, total=False):
    """Options of `explore`."""

    strategy: Strategy | None
    """The search (default None: "mixed")."""


def _options(
    caller: str, accepted: Any, given: dict[str, Any], **fixed: Any
) -> _native.ExploreOptions:
    """Check `given` (the keywords `caller` was passed, of the TypedDict
    `accepted`) and build the native options, with `fixed` on top."""
    keys = accepted.__required_keys__ | accepted.__optional_keys__
    for name in given:
        if name not in keys:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    opts = {**given, **fixed}
    # None asks for the default strategy and substrate (for the other
    # options None is a value: no limit, no seed).
    if opts.get("strategy") is None:
        opts.pop("strategy", None)
    strategy = opts.get("strategy", "mixed")
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(_STRATEGIES)}")
    _check_limit("max_executions", opts.get("max_executions"), integer=True)
    _check_limit(
        "preemption_bound",
        opts.get("preemption_bound"),
        integer=True,
        zero_ok=True,
        maximum=_U32_MAX,
    )
    _check_limit("total_timeout", opts.get("total_timeout"), integer=False)
    _check_limit("timeout_per_run", opts.get("timeout_per_run"), integer=False)
    _check_limit("max_attempts", opts.get("max_attempts"), integer=True)
    _check_limit("max_ops", opts.get("max_ops"), integer=True)
    _check_limit(
        "reproduce_on_failure",
        opts.get("reproduce_on_failure"),
        integer=True,
        zero_ok=True,
        maximum=_U32_MAX,
    )
    _check_limit(
        "shrink_budget", opts.get("shrink_budget"), integer=True, zero_ok=True, maximum=_U32_MAX
    )
    seed = opts.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _U64_MAX
    ):
        raise ValueError(f"seed must be an int between 0 and {_U64_MAX}, got {seed!r}")
    search_order = opts.get("search_order", "lowest-first")
    if search_order not in _SEARCH_ORDERS:
        raise ValueError(
            f"unknown search_order {search_order!r}: use one of {', '.join(_SEARCH_ORDERS)}"
        )
    substrate = opts.get("substrate") or default_substrate()
    if substrate not in _SUBSTRATES:
        raise ValueError(f"unknown substrate {substrate!r}: use one of {', '.join(_SUBSTRATES)}")
    opts["substrate"] = _usable_substrate(substrate)
    if opts.get("progress") is None:
        opts["progress"] = _progress_default
    if "timeout_per_run" in opts:
        opts["timeout_per_run"] = float(opts["timeout_per_run"])
    return _native.ExploreOptions(**opts)


def _run(
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None,
    opts: _native.ExploreOptions,
    full_frames: bool = False,
) -> ExploreResult:
    _check_callable("setup", setup)
    _check_callable("invariant", invariant)
    if teardown is not None:
        _check_callable("teardown", teardown)
    if isinstance(threads, str | bytes) or not isinstance(threads, Sequence):
        raise TypeError("threads must be a list of callables, each taking the setup() state")
    if not threads:
        raise ValueError("threads is empty: give at least one callable to run concurrently")
    for i, f in enumerate(threads):
        _check_thread_function(f"threads[{i}]", f)
    if _native._coop_scheduled():
        raise RuntimeError(
            "explore() was called from inside an explored thread: explorations do not nest; "
            "call it from the test itself"
        )
    if getattr(_controlling, "active", False):
        nested = RuntimeError(
            "explore() was called from setup, the invariant or teardown of another "
            "exploration: explorations do not nest; call it from the test itself"
        )
        # The outer exploration raises it too, even if the user's code
        # caught it or it was reported as the invariant's failure.
        _controlling.nested = nested
        raise nested
    with _exploring:
        _controlling.active = True
        _controlling.nested = None
        _native._set_full_frames(bool(full_frames))
        try:
            result = _run_exclusive(setup, threads, invariant, teardown, opts)
        finally:
            _native._set_full_frames(False)
            _controlling.active = False
        if _controlling.nested is not None:
            raise _controlling.nested
        return result


@contextlib.contextmanager
def _gc_on_controller() -> Iterator[Callable[[], None] | None]:
    """Automatic collection runs the finalizers of arbitrary garbage (an
    unclosed connection's ResourceWarning…) on whichever thread allocates: on
    an explored thread their code would be traced and scheduled. During an
    exploration, collect on the controller between executions instead, as
    often as automatic collection would have."""
    if not gc.isenabled():
        yield None
        return
    gc.disable()
    try:
        yield _collect_like_automatic_gc
    finally:
        gc.enable()


def _collect_like_automatic_gc() -> None:
    c0, c1, c2 = gc.get_count()
    t0, t1, t2 = gc.get_threshold()
    if c0 > t0:
        gc.collect(2 if c2 > t2 else 1 if c1 > t1 else 0)


def _before(step: Callable[[], None] | None, setup: Callable[[], Any]) -> Callable[[], Any]:
    if step is None:
        return setup

    def setup_after_step() -> Any:
        step()
        return setup()

    return setup_after_step


def _run_exclusive(
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None,
    options: _native.ExploreOptions,
) -> ExploreResult:
    pool = _pool()
    _check_capacity(len(threads))
    with _coop.cooperative(pool), _db_hooks.exploring() as db, _gc_on_controller() as collect:
        run_setup = _before(collect, db.wrap_setup(setup))
        settled = _settle(pool, run_setup, threads, invariant, teardown, options)
        if settled.property_holds is None and "timeout_per_run" in settled.explanation:
            # The program does not even run once: exploring it would only
            # time out again.
            return ExploreResult._of(settled, options.substrate)
        outcome = _native._explore(pool, run_setup, list(threads), invariant, teardown, options)
        caveat = db.session.caveat
    result = ExploreResult._of(outcome, options.substrate)
    if caveat is not None and result.property_holds is True:
        result.property_holds = None
        result.explanation = f"not a proof: {caveat}.\n{result.explanation}"
    result._replay_target = (setup, list(threads), invariant, teardown)
    return result


def _settle(
    pool: Any,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    teardown: Callable[[Any], Any] | None,
    options: _native.ExploreOptions,
) -> _native.ExploreOutcome:
    """Run the program once, unrecorded, before exploring it.

    Libraries initialise lazily on first use (a dialect's first connect, a
    registry filled once, a compiled-statement cache): if that happened in
    the first explored execution only, later executions would run a
    different program than the one DPOR planned from, and interleavings
    would be missed without a sign. After one execution the program has
    settled. Its outcome is not reported (but for a run timeout): the
    exploration proper starts with the same schedule, so a failure shows up
    there again. `setup` and `teardown` run once more than
    `executions_explored` says.
    """
    return _native._explore(pool, setup, list(threads), invariant, teardown, options.settling())


def explore(
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    *,
    teardown: Callable[[Any], Any] | None = None,
    **options: Unpack[Options],
) -> ExploreResult:
    """Run `threads` (each called with `setup()`'s state) under every
    interleaving DPOR deems distinct, or sampled ones ("random", "pct"), and
    check `invariant(state)` after each execution. The keyword options are
    those of `Options` (defaults: `frontrun._native.ExploreOptions`).

    The default (`strategy=None`, or "mixed") finds shallow bugs first: one
    optimal DPOR search run in passes ("iterative" alone), the branches
    needing at most 0 preemptions first, then 1, then 2 (`preemption_bound`
    changes that last bounded pass), then the rest, with a uniformly random
    or PCT run after every 2 of its executions (256 at most). A branch over
    the current bound is deferred, not dropped, so no DPOR execution is
    repeated; randomized runs never make a verdict True, so the search is
    exhausted exactly when plain DPOR's would be. `strategy="dpor"` runs plain
    optimal DPOR in its depth-first order (one execution per interleaving),
    or, with `preemption_bound=k`, only the schedules with at most k
    preemptions (a proof for that bound).

    `search_order` is the order in which DPOR tries threads at free choices:
    "lowest-first", "highest-first" or "random" (seeded by `seed`); every
    order runs the same number of executions when the search is exhaustive.

    A failure is minimised before it is reported: its schedule is shrunk to
    the fewest preemptions, then the fewest context switches, that still fail
    the same way under replay, with at most `shrink_budget` replays (0: off).
    `result.regression_test()` gives a pytest test replaying it.

    `substrate` says what runs the explored threads: "threads" (real OS
    worker threads, handing the turn over with condition variables) or
    "coroutines" (greenlets on the calling thread, handing it over with a
    stack switch: much cheaper per scheduling point). Both run the same
    search and must reach the same verdicts; None takes
    `FRONTRUN_SUBSTRATE`, else "threads".

    Each line of an explanation shows the innermost frame of the user's own
    code (not the standard library, an installed package or frontrun), where
    a statement run by an ORM was asked for; `full_frames=True` lists the
    library frames below it too.

    `progress`: an exploration running longer than 2 s shows its executions,
    executions per second, current bound and elapsed time on stderr (one
    line rewritten in place on a terminal, else one line per 10 s). False
    turns it off; None shows it, except under pytest without `-v`."""
    given = dict(options)
    full_frames = bool(given.pop("full_frames", False))
    return _run(
        setup,
        threads,
        invariant,
        teardown,
        _options("explore", Options, given),
        full_frames,
    )


def replay(
    token: str,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    *,
    teardown: Callable[[Any], Any] | None = None,
    **options: Unpack[ReplayOptions],
) -> ExploreResult:
    """Rerun exactly the interleaving of `token` (a result's `counterexample`).

    A replay that cannot follow the token (the code changed) has
    `diverged=True` and `property_holds=None` unless it failed anyway."""
    if not isinstance(token, str):
        raise TypeError(
            f"the replay token must be a str (a result's counterexample), got "
            f"{type(token).__name__}: {token!r}; a passing result has no counterexample to replay"
        )
    given = dict(options)
    full_frames = bool(given.pop("full_frames", False))
    return _run(
        setup,
        threads,
        invariant,
        teardown,
        _options(
            "replay",
            ReplayOptions,
            given,
            strategy="dpor",
            replay=token,
            max_attempts=1,
            reproduce_on_failure=0,
        ),
        full_frames,
    )


def _reference(obj: object, role: str) -> tuple[str | None, str]:
    """`(import line, expression)` naming `obj` in a test module. An object with
    no importable name (a lambda, a nested function, something defined in
    `__main__`) gets a placeholder name and a comment saying what to do."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None, f"{role},  # TODO: {obj!r} has no importable name; move it to module level"
    if module == "__main__":
        return None, f"{qualname},  # TODO: defined in __main__; import it from its module"
    return f"from {module} import {qualname.split('.')[0]}", f"{qualname},"


def _regression_source(result: ExploreResult, name: str | None) -> str:
    target = result._replay_target
    setup, threads, invariant, teardown = target if target else (None, [], None, None)
    imports: list[str] = ["import frontrun"]

    def ref(obj: object, role: str) -> str:
        line, expr = _reference(obj, role)
        if line and line not in imports:
            imports.append(line)
        return expr

    setup_src = ref(setup, "setup")
    thread_src = "".join(f"            {ref(f, f'thread_{i}')}\n" for i, f in enumerate(threads))
    invariant_src = ref(invariant, "invariant")
    teardown_src = f"        teardown={ref(teardown, 'teardown')}\n" if teardown else ""
    kind = result.failure_kind or "failure"
    base = getattr(setup, "__name__", "program") if setup is not None else "program"
    test_name = name or f"test_{_identifier(base)}_{kind}_interleaving_still_fails"
    return (
        "\n".join(imports)
        + f"""


def {test_name}() -> None:
    \"\"\"Replays the {kind} failure frontrun found ({result.preemptions} preemptions,
    {result.context_switches} context switches) and asserts that it still fails.

    Runnable as pasted when setup, the threads and the invariant are importable
    (module-level names); a comment marks any that are not. When the bug is fixed
    the replay passes and this test fails: replace it with an exploration that
    asserts the property holds.\"\"\"
    result = frontrun.replay(
        {result.counterexample!r},
        {setup_src}
        [
{thread_src}        ],
        {invariant_src}
{teardown_src}    )
    assert result.property_holds is False, "the recorded interleaving no longer fails"
    assert result.failure_kind == {result.failure_kind!r}
"""
    )


def _identifier(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in text).strip("_")
    return out or "program"
