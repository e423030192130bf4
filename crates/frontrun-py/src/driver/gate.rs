//! One execution's turn-taking: which thread runs, what each one waits to do.
//!
//! Exactly one explored thread holds the *turn* at a time. At a scheduling
//! point the running thread records its pending event, asks the strategy, and
//! either continues at once (chosen again: no GIL release, no wake-up) or
//! hands the turn over and parks with the GIL released. The chooser applies
//! the chosen thread's operation (lock taken, waiter removed…) under the same
//! mutex, so the state the strategy saw is the state that runs.
//!
//! Timed waits (`Op::timeout`) never wait in real time. Timing out is a
//! scheduling choice like any other: a timed wait that cannot complete is
//! still reported enabled, and running it then means "it timed out". The
//! execution has a virtual clock, which only timeouts and sleeps advance
//! (by their duration, from when they started waiting); explored threads read
//! it through `time.monotonic()` and friends, so a loop that waits until a
//! deadline computed from the clock ends after its first timeout. To keep a
//! polling loop (`while not ev.wait(0.1): ...`) from spinning forever without
//! the others moving, a thread that timed out may time out again only after
//! another thread ran a step (or when nothing else can run at all).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use frontrun_engine::event::{AccessKind, Event, ThreadId};
use frontrun_engine::strategy::{Choice, Strategy, ThreadStatus};
use frontrun_engine::waitfor::WaitForGraph;
use pyo3::prelude::*;

use super::ExplorationAborted;
use frontrun_engine::coop::{Blocked, Op};

/// A source position captured when a cooperative operation was called.
#[derive(Clone, Debug)]
pub struct Loc {
    pub file: String,
    pub line: u32,
    pub function: String,
}

/// One executed event, kept for the explanation.
pub struct Step {
    pub tid: ThreadId,
    pub event: Event,
    /// Set for cooperative operations; tracer events carry a site instead.
    pub loc: Option<Loc>,
    /// Human text for cooperative operations ("acquire Lock#3").
    pub what: Option<String>,
}

enum Slot {
    /// Spawn announced, not yet executed: never enabled.
    Unborn,
    Pending {
        event: Event,
        op: Option<Box<dyn Op>>,
        loc: Option<Loc>,
        what: Option<String>,
        /// The virtual clock when the thread got here (a timeout ends
        /// `timeout` after it).
        since: f64,
    },
    Running,
    Finished,
}

struct Thread {
    slot: Slot,
    /// Result of the last applied operation (1/0 for acquire…).
    result: i64,
    name: String,
    /// Where the thread last stopped (for deadlock and timeout reports).
    last_loc: Option<Loc>,
    /// The tracer site of its last event, when newer than `last_loc`.
    last_site: u64,
    error: Option<PyErr>,
    /// Steps this thread ran (the others ran `steps - own_steps`).
    own_steps: usize,
    /// The others' step count when this thread last timed out: it may time
    /// out again only once they moved on.
    spin_mark: Option<usize>,
    /// The OS thread ident of the worker while it runs this thread's code:
    /// where a stop request (an asynchronous exception) is sent.
    ident: Option<u64>,
    /// The thread was told of the abort (raised `ExplorationAborted`): it is
    /// unwinding, and its cleanup code runs unscheduled (see `point`).
    unwinding: bool,
    /// Signalled when this thread gets the turn (or the run is aborted):
    /// one condvar per thread so a hand-over wakes only its receiver.
    cv: Arc<Condvar>,
}

/// How often a controller waiting for its threads checks for signals.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Why an execution was stopped from outside its threads' code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    Deadlock(String),
    Timeout(String),
    /// A strategy broke its contract: a bug in frontrun, not in user code.
    Internal(String),
    /// DPOR: every continuation repeats an explored trace; not a verdict.
    Pruned,
}

/// One thread of a deadlock report.
#[derive(Clone, Debug)]
pub struct BlockedThread {
    pub tid: ThreadId,
    pub waits_for: Blocked,
}

struct State {
    strategy: Option<Box<dyn Strategy + Send>>,
    threads: Vec<Thread>,
    turn: Option<ThreadId>,
    abort: Option<Abort>,
    trace: Vec<Step>,
    /// Jobs handed to workers whose worker has not yet returned.
    live_jobs: usize,
    deadline: Instant,
    /// Scheduling decisions taken by the gate itself (timed waits firing).
    forced: Vec<ThreadId>,
    /// Steps run so far, readable by pending operations (`SleepOp`).
    steps: Arc<AtomicUsize>,
    /// Per-thread "has returned", rebuilt at each decision; kept to reuse
    /// its allocation (a scheduling point should allocate nothing).
    finished: Vec<bool>,
    /// Always empty between decisions; kept for its allocation.
    statuses: Vec<ThreadStatus<'static>>,
    /// Virtual seconds since the execution started (see the module doc).
    vclock: f64,
    /// Stop requests (asynchronous exceptions) were sent to its threads.
    interrupted: bool,
}

/// The shared state of one execution.
pub struct Gate {
    st: Mutex<State>,
    /// The controller's condvar: jobs done, or aborted.
    cv: Condvar,
    pub run_timeout: Duration,
}

/// What the gate decided after recording a pending event.
enum Decision {
    Run(ThreadId),
    Done,
    Stop,
}

impl Gate {
    pub fn new(strategy: Box<dyn Strategy + Send>, run_timeout: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            st: Mutex::new(State {
                strategy: Some(strategy),
                threads: Vec::new(),
                turn: None,
                abort: None,
                trace: Vec::new(),
                live_jobs: 0,
                deadline: Instant::now() + run_timeout,
                forced: Vec::new(),
                steps: Arc::new(AtomicUsize::new(0)),
                finished: Vec::new(),
                statuses: Vec::new(),
                vclock: 0.0,
                interrupted: false,
            }),
            cv: Condvar::new(),
            run_timeout,
        })
    }

    /// Wake the thread that now holds the turn.
    /// Signalled after the mutex is released, so the woken thread does not
    /// immediately block on it.
    fn turn_cv(st: &State) -> Option<Arc<Condvar>> {
        st.turn
            .and_then(|t| st.threads.get(t))
            .map(|t| t.cv.clone())
    }

    /// Wake everyone: the run is over or aborted.
    fn wake_all(&self, st: &State) {
        for t in &st.threads {
            t.cv.notify_all();
        }
        self.cv.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a thread parked before its start (a pure yield point).
    pub fn add_thread(&self, name: String, started: bool) -> ThreadId {
        let mut st = self.lock();
        let tid = st.threads.len();
        st.threads.push(Thread {
            slot: if started { start_slot() } else { Slot::Unborn },
            result: 0,
            name,
            last_loc: None,
            last_site: 0,
            error: None,
            own_steps: 0,
            spin_mark: None,
            ident: None,
            unwinding: false,
            cv: Arc::new(Condvar::new()),
        });
        st.live_jobs += 1;
        tid
    }

    /// The step counter, and its value now.
    pub fn steps(&self) -> (Arc<AtomicUsize>, usize) {
        let st = self.lock();
        let n = st.steps.load(Ordering::Relaxed);
        (st.steps.clone(), n)
    }

    /// The execution's virtual clock, in seconds since it started.
    pub fn vnow(&self) -> f64 {
        self.lock().vclock
    }

    /// Take the strategy back once the execution is over.
    pub fn take_strategy(&self) -> Option<Box<dyn Strategy + Send>> {
        self.lock().strategy.take()
    }

    /// Start the execution: the first decision, made by the controller.
    pub fn kick(&self) {
        let mut st = self.lock();
        st.deadline = Instant::now() + self.run_timeout;
        // The turn holder is woken by `wait_jobs`, once the controller has
        // released the GIL, so it does not wake only to wait for the GIL.
        if !matches!(decide(&mut st), Decision::Run(_)) {
            self.wake_all(&st);
        }
    }

    /// Wake the current turn holder (after releasing the GIL: see `kick`).
    pub fn wake(&self) {
        let cv = Self::turn_cv(&self.lock());
        if let Some(cv) = cv {
            cv.notify_one();
        }
    }

    /// A scheduling point of thread `tid`, which holds the turn and the GIL.
    /// Returns the result of `op` once it ran.
    pub fn point(
        &self,
        py: Python<'_>,
        tid: ThreadId,
        event: Event,
        op: Option<Box<dyn Op>>,
        loc: Option<Loc>,
        what: Option<String>,
    ) -> PyResult<i64> {
        let mut st = self.lock();
        if let Some(a) = st.abort.clone() {
            return Self::after_abort(&mut st, tid, &a, op);
        }
        if st.turn != Some(tid) {
            // Two threads running at once would make the trace a lie: stop
            // the execution as frontrun's own error rather than record it.
            let a = Abort::Internal(format!(
                "thread '{}' reached a scheduling point without holding the turn (held by {:?})",
                st.threads[tid].name, st.turn
            ));
            st.abort = Some(a.clone());
            self.wake_all(&st);
            return Err(abort_error(&a));
        }
        if loc.is_some() {
            st.threads[tid].last_loc.clone_from(&loc);
            st.threads[tid].last_site = 0;
        } else {
            st.threads[tid].last_site = event.site;
        }
        let since = st.vclock;
        st.threads[tid].slot = Slot::Pending {
            event,
            op,
            loc,
            what,
            since,
        };
        match decide(&mut st) {
            Decision::Run(u) if u == tid => return Ok(st.threads[tid].result),
            // Woken in `wait_turn` once our GIL is released.
            Decision::Run(_) => {}
            Decision::Done => self.wake_all(&st),
            Decision::Stop => {
                self.wake_all(&st);
                st.threads[tid].unwinding = true;
                return Err(abort_error(st.abort.as_ref().expect("stop sets abort")));
            }
        }
        drop(st);
        self.wait_turn(py, tid)
    }

    /// A scheduling point reached once the execution was stopped.
    ///
    /// The first one raises `ExplorationAborted` to unwind the thread. The
    /// ones after run the thread's own cleanup (`finally`, `__exit__`: a
    /// rollback, a lock release) unscheduled, so that no state is left
    /// behind for the next execution or the teardown: an operation that can
    /// proceed (a release, a free lock) is applied at once, one that would
    /// wait raises again.
    fn after_abort(
        st: &mut State,
        tid: ThreadId,
        a: &Abort,
        op: Option<Box<dyn Op>>,
    ) -> PyResult<i64> {
        if !st.threads[tid].unwinding {
            st.threads[tid].unwinding = true;
            return Err(abort_error(a));
        }
        let Some(mut op) = op else {
            return Ok(0);
        };
        let finished: Vec<bool> = st
            .threads
            .iter()
            .map(|t| matches!(t.slot, Slot::Finished))
            .collect();
        if op.enabled(tid, &finished) {
            Ok(op.apply(tid, false))
        } else {
            Err(abort_error(a))
        }
    }

    /// Park (GIL released) until `tid` holds the turn.
    pub fn wait_turn(&self, py: Python<'_>, tid: ThreadId) -> PyResult<i64> {
        py.allow_threads(|| self.wait_turn_nogil(tid))
            .map_err(|a| abort_error(&a))
    }

    /// Block until `tid` holds the turn; the caller must not hold the GIL.
    pub fn wait_turn_nogil(&self, tid: ThreadId) -> Result<i64, Abort> {
        let mut st = self.lock();
        if st.turn != Some(tid) {
            if let Some(cv) = Self::turn_cv(&st) {
                drop(st);
                cv.notify_one();
                st = self.lock();
            }
        }
        loop {
            if let Some(a) = st.abort.clone() {
                st.threads[tid].unwinding = true;
                return Err(a);
            }
            if st.turn == Some(tid) {
                return Ok(st.threads[tid].result);
            }
            let now = Instant::now();
            if now >= st.deadline {
                let a = Abort::Timeout(format!(
                    "thread '{}' waited for its turn longer than timeout_per_run ({:?})",
                    st.threads[tid].name, self.run_timeout
                ));
                st.abort = Some(a.clone());
                st.threads[tid].unwinding = true;
                self.wake_all(&st);
                return Err(a);
            }
            let wait = st.deadline - now;
            let cv = st.threads[tid].cv.clone();
            st = cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Thread `tid` returned (or raised `error`): pass the turn on.
    pub fn finish(&self, tid: ThreadId, error: Option<PyErr>) {
        let mut st = self.lock();
        st.threads[tid].slot = Slot::Finished;
        st.threads[tid].error = error;
        if st.abort.is_none() && st.turn == Some(tid) {
            match decide(&mut st) {
                // The worker wakes it once it released the GIL (`wake`).
                Decision::Run(_) | Decision::Done => {}
                Decision::Stop => self.wake_all(&st),
            }
        }
    }

    /// A worker is done with its job (after `finish`, or after an abort).
    pub fn job_done(&self) {
        let mut st = self.lock();
        st.live_jobs = st.live_jobs.saturating_sub(1);
        if st.live_jobs == 0 {
            self.cv.notify_all();
        }
    }

    /// Wait (GIL released) for every job of the execution to return. `false`
    /// when `deadline` passed first. Signals are checked every
    /// [`SIGNAL_POLL`], so Ctrl-C ends the wait promptly with its
    /// `KeyboardInterrupt`, whatever the threads are doing.
    pub fn wait_jobs(&self, py: Python<'_>, deadline: Instant) -> PyResult<bool> {
        let cv = Self::turn_cv(&self.lock());
        if let Some(cv) = cv {
            py.allow_threads(|| cv.notify_one());
        }
        loop {
            let slice = deadline.min(Instant::now() + SIGNAL_POLL);
            if py.allow_threads(|| self.wait_jobs_nogil(slice)) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    fn wait_jobs_nogil(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        loop {
            if st.live_jobs == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether `interrupt_running` was called: workers must then make sure
    /// no stop request stays pending (see [`consume_stop_request`]).
    pub fn was_interrupted(&self) -> bool {
        self.lock().interrupted
    }

    /// Withdraw the stop requests of threads that did not take them (blocked
    /// in C): a request left pending keeps the interpreter's "pending work"
    /// flag raised, on which CPython 3.11 loops forever in traced code.
    pub fn withdraw_stop_requests(&self, py: Python<'_>) {
        for (_, ident) in self.running() {
            // SAFETY: the GIL is held; NULL withdraws that thread's request.
            unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, std::ptr::null_mut()) };
        }
        consume_stop_request(py);
    }

    /// Jobs whose worker has not returned yet.
    pub fn live_jobs(&self) -> usize {
        self.lock().live_jobs
    }

    /// The worker running thread `tid`'s code is the OS thread `ident`
    /// (None: it left that code).
    pub fn set_running_on(&self, tid: ThreadId, ident: Option<u64>) {
        if let Some(t) = self.lock().threads.get_mut(tid) {
            t.ident = ident;
        }
    }

    /// (name, OS ident) of every thread still running its code: those the
    /// gate cannot stop by itself.
    pub fn running(&self) -> Vec<(String, u64)> {
        self.lock()
            .threads
            .iter()
            .filter(|t| !matches!(t.slot, Slot::Finished))
            .filter_map(|t| Some((t.name.clone(), t.ident?)))
            .collect()
    }

    /// Ask every thread still in its code to stop: an `ExplorationAborted`
    /// raised asynchronously, at its next Python instruction (a thread
    /// blocked in C gets it when, if ever, it returns). Returns how many
    /// were asked.
    pub fn interrupt_running(&self, py: Python<'_>) -> usize {
        let mut st = self.lock();
        st.interrupted = true;
        let exc = py.get_type::<ExplorationAborted>();
        let mut n = 0;
        for t in &st.threads {
            if let (Some(ident), false) = (t.ident, matches!(t.slot, Slot::Finished)) {
                // SAFETY: the GIL is held; the exception type is a live
                // class object, which the call borrows (it takes its own
                // reference when it records the request).
                let hit = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr()) };
                n += usize::from(hit > 0);
            }
        }
        n
    }

    /// Stop the execution: parked threads raise `ExplorationAborted`.
    pub fn abort(&self, why: Abort) {
        let mut st = self.lock();
        if st.abort.is_none() {
            st.abort = Some(why);
        }
        self.wake_all(&st);
    }

    pub fn aborted(&self) -> Option<Abort> {
        self.lock().abort.clone()
    }

    /// The run deadline of this execution.
    pub fn deadline(&self) -> Instant {
        self.lock().deadline
    }

    /// Where every unfinished thread stands: (name, last location).
    pub fn positions(&self, py: Python<'_>) -> Vec<(String, Option<Loc>)> {
        let raw: Vec<(String, Option<Loc>, u64)> = self
            .lock()
            .threads
            .iter()
            .filter(|t| !matches!(t.slot, Slot::Finished))
            .map(|t| (t.name.clone(), t.last_loc.clone(), t.last_site))
            .collect();
        raw.into_iter()
            .map(|(name, loc, site)| {
                let traced = (site != 0)
                    .then(|| crate::tracer::site_location(py, site))
                    .flatten()
                    .map(|s| Loc {
                        file: s.file,
                        line: s.line,
                        function: s.function,
                    });
                (name, traced.or(loc))
            })
            .collect()
    }

    /// Every exception raised by a thread, in thread order, other than our
    /// own aborts.
    pub fn take_errors(&self, py: Python<'_>) -> Vec<(String, PyErr)> {
        let mut st = self.lock();
        st.threads
            .iter_mut()
            .filter_map(|t| {
                let e = t.error.take()?;
                (!e.is_instance_of::<ExplorationAborted>(py)).then(|| (t.name.clone(), e))
            })
            .collect()
    }

    pub fn thread_names(&self) -> Vec<String> {
        self.lock().threads.iter().map(|t| t.name.clone()).collect()
    }

    pub fn is_finished(&self, tid: ThreadId) -> bool {
        self.lock()
            .threads
            .get(tid)
            .is_some_and(|t| matches!(t.slot, Slot::Finished))
    }

    /// The executed steps, in order.
    pub fn take_trace(&self) -> Vec<Step> {
        std::mem::take(&mut self.lock().trace)
    }

    pub fn forced(&self) -> Vec<ThreadId> {
        self.lock().forced.clone()
    }
}

fn start_slot() -> Slot {
    Slot::Pending {
        event: Event::default(),
        op: None,
        loc: None,
        what: None,
        since: 0.0,
    }
}

extern "C" {
    /// CPython's ident of the calling thread (`threading.get_ident()`).
    fn PyThread_get_thread_ident() -> std::os::raw::c_ulong;
}

/// The calling thread's ident, as `threading.get_ident()` gives it.
// `c_ulong` is 32 bits on some platforms, where the conversion is needed.
#[allow(clippy::useless_conversion)]
pub fn thread_ident() -> u64 {
    // SAFETY: a plain query about the calling thread, valid at any time.
    u64::from(unsafe { PyThread_get_thread_ident() })
}

/// Leave no stop request pending on the calling thread, and lower the
/// interpreter-wide flag that any request (even a withdrawn one) raised:
/// CPython lowers it only when a thread takes a request, so this thread
/// takes one of its own, at once, in a one-line evaluation.
pub fn consume_stop_request(py: Python<'_>) {
    let exc = py.get_type::<ExplorationAborted>();
    // SAFETY: the GIL is held; the type object is alive, and the call takes
    // its own reference.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread_ident() as _, exc.as_ptr()) };
    // Evaluating code checks for pending work on entry: the request is
    // raised here and dropped.
    let _ = py.eval(c"None", None, None);
}

pub fn abort_error(a: &Abort) -> PyErr {
    match a {
        Abort::Deadlock(m) | Abort::Timeout(m) | Abort::Internal(m) => {
            ExplorationAborted::new_err(m.clone())
        }
        Abort::Pruned => ExplorationAborted::new_err("execution pruned by DPOR (sleep set)"),
    }
}

/// Ask the strategy and run its choice; on deadlock, fire a timed wait if
/// one exists, else record the deadlock and stop.
fn decide(st: &mut State) -> Decision {
    let choice = {
        let State {
            strategy,
            threads,
            finished,
            statuses: spare,
            steps,
            ..
        } = &mut *st;
        let steps = steps.load(Ordering::Relaxed);
        finished.clear();
        finished.extend(threads.iter().map(|t| matches!(t.slot, Slot::Finished)));
        let mut statuses = recycle(std::mem::take(spare));
        statuses.extend(threads.iter().enumerate().map(|(i, t)| {
            match &t.slot {
                Slot::Pending { event, op, .. } => {
                    if op
                        .as_ref()
                        .is_none_or(|o| o.enabled(i, finished) || may_time_out(t, &**o, steps))
                    {
                        ThreadStatus::Enabled(event)
                    } else {
                        ThreadStatus::Disabled(event)
                    }
                }
                Slot::Unborn => ThreadStatus::Disabled(&UNBORN),
                // A running thread cannot be asked about; it is the caller.
                Slot::Running | Slot::Finished => ThreadStatus::Finished,
            }
        }));
        let choice = match strategy.as_mut() {
            Some(s) => s.choose(&statuses),
            None => Choice::AllFinished,
        };
        *spare = recycle(statuses);
        choice
    };
    match choice {
        Choice::Run(u) if u < st.threads.len() && is_enabled(st, u) => {
            run(st, u, false);
            Decision::Run(u)
        }
        Choice::Run(u) => {
            st.abort = Some(Abort::Internal(format!(
                "the strategy chose thread {u}, which cannot run"
            )));
            Decision::Stop
        }
        Choice::AllFinished => {
            st.turn = None;
            Decision::Done
        }
        Choice::SleepBlocked => {
            st.abort = Some(Abort::Pruned);
            st.turn = None;
            Decision::Stop
        }
        Choice::Deadlock => {
            let timed = st.threads.iter().position(|t| match &t.slot {
                Slot::Pending { op: Some(op), .. } => op.timed(),
                _ => false,
            });
            if let Some(u) = timed {
                st.forced.push(u);
                run(st, u, true);
                return Decision::Run(u);
            }
            st.abort = Some(Abort::Deadlock(deadlock_report(st)));
            st.turn = None;
            Decision::Stop
        }
    }
}

static UNBORN: Event = Event {
    accesses: Vec::new(),
    site: 0,
};

/// Whether `u` may run, by the `finished` flags of the current decision.
fn is_enabled(st: &State, u: ThreadId) -> bool {
    let steps = st.steps.load(Ordering::Relaxed);
    let t = &st.threads[u];
    match &t.slot {
        Slot::Pending { op, .. } => op
            .as_ref()
            .is_none_or(|o| o.enabled(u, &st.finished) || may_time_out(t, &**o, steps)),
        _ => false,
    }
}

/// Whether `t`'s pending timed wait may end by timing out now: always the
/// first time, then only after another thread ran a step since its last
/// timeout (see the module doc).
fn may_time_out(t: &Thread, op: &dyn Op, steps: usize) -> bool {
    op.timeout().is_some()
        && t.spin_mark
            .is_none_or(|m| steps.saturating_sub(t.own_steps) > m)
}

/// The same (emptied) buffer, for borrows of another lifetime. Collecting a
/// vector's own `into_iter` reuses its allocation; the closure never runs
/// because the vector is empty.
fn recycle<'b>(mut v: Vec<ThreadStatus<'_>>) -> Vec<ThreadStatus<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("emptied above"))
        .collect()
}

fn run(st: &mut State, u: ThreadId, timed_out: bool) {
    let slot = std::mem::replace(&mut st.threads[u].slot, Slot::Running);
    let steps = st.steps.load(Ordering::Relaxed);
    if let Slot::Pending {
        event,
        op,
        loc,
        what,
        since,
    } = slot
    {
        if let Some(mut op) = op {
            // Chosen while it could not complete: it timed out.
            let timed_out = timed_out || !op.enabled(u, &st.finished);
            let t = &mut st.threads[u];
            if timed_out {
                t.spin_mark = Some(steps.saturating_sub(t.own_steps));
            }
            t.result = op.apply(u, timed_out);
            if let Some(d) = op.elapsed(timed_out) {
                st.vclock = st.vclock.max(since + d);
            }
        }
        for a in &event.accesses {
            if a.kind == AccessKind::Spawn {
                if let Some(child) = st.threads.get_mut(a.obj as usize) {
                    if matches!(child.slot, Slot::Unborn) {
                        child.slot = start_slot();
                    }
                }
            }
        }
        st.trace.push(Step {
            tid: u,
            event,
            loc,
            what,
        });
    }
    st.turn = Some(u);
    st.threads[u].own_steps += 1;
    st.steps.fetch_add(1, Ordering::Relaxed);
}

/// The wait-for cycle (or the blocked threads if there is none), with the
/// file:line where each thread is parked.
fn deadlock_report(st: &State) -> String {
    let blocked: Vec<BlockedThread> = st
        .threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.slot {
            Slot::Pending { op: Some(op), .. } => Some(BlockedThread {
                tid: i,
                waits_for: op.blocked_on(),
            }),
            _ => None,
        })
        .collect();
    // Each blocked thread waits for a resource of its own, held by the owner
    // of what it waits for (a lock's holder, a joined thread).
    let mut graph = WaitForGraph::new();
    for b in &blocked {
        if let Some(owner) = b.waits_for.owner() {
            let resource = (1u64 << 63) | b.tid as u64;
            graph.hold(owner, resource);
            graph.wait(b.tid, resource);
        }
    }
    let cycle: Option<Vec<ThreadId>> = graph
        .find_cycle()
        .map(|edges| edges.iter().map(|e| e.thread).collect());
    let describe = |b: &BlockedThread| {
        let t = &st.threads[b.tid];
        let at = t.last_loc.as_ref().map_or_else(
            || "?".to_string(),
            |l| format!("{}:{} in {}", l.file, l.line, l.function),
        );
        format!(
            "  thread '{}' at {at}: {}",
            t.name,
            b.waits_for.describe(&names(st))
        )
    };
    let mut out = String::new();
    match cycle {
        Some(c) => {
            out.push_str("deadlock: wait-for cycle ");
            let chain: Vec<String> = c
                .iter()
                .chain(c.first())
                .map(|&i| format!("'{}'", st.threads[i].name))
                .collect();
            out.push_str(&chain.join(" -> "));
            out.push('\n');
            for &i in &c {
                if let Some(b) = blocked.iter().find(|b| b.tid == i) {
                    out.push_str(&describe(b));
                    out.push('\n');
                }
            }
        }
        None => {
            out.push_str("deadlock: every unfinished thread is blocked\n");
            for b in &blocked {
                out.push_str(&describe(b));
                out.push('\n');
            }
        }
    }
    out
}

fn names(st: &State) -> Vec<String> {
    st.threads.iter().map(|t| t.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let e = Event::default();
        let mut v = Vec::with_capacity(8);
        v.push(ThreadStatus::Enabled(&e));
        let cap = v.capacity();
        let ptr = v.as_ptr() as usize;
        let back: Vec<ThreadStatus<'static>> = recycle(v);
        assert!(back.is_empty());
        assert_eq!((back.capacity(), back.as_ptr() as usize), (cap, ptr));
    }
}
