//! One execution's gate: the scheduling core ([`Turns`], pure Rust) plus
//! what needs real threads and CPython — parking each explored thread on its
//! own condvar with the GIL released, the run deadline, the worker jobs, the
//! threads' exceptions and stop requests.
//!
//! At a scheduling point the running thread records its pending event in the
//! core under the gate's mutex and either continues at once (chosen again: no
//! GIL release, no wake-up) or hands the turn over and parks. Explored
//! threads read the core's virtual clock through `time.monotonic()` and
//! friends (see [`Turns`] for timed waits).

use std::any::Any;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use frontrun_engine::coop::CoopOp;
use frontrun_engine::event::{Event, ThreadId};
use frontrun_engine::strategy::Strategy;
pub use frontrun_engine::turns::{Abort, Loc, TraceStep};
use frontrun_engine::turns::{Decision, PointOutcome, Turns};
use pyo3::prelude::*;

use super::stall;
use super::ExplorationAborted;

/// Threads that wait for their turn by switching among themselves on one OS
/// thread (the coroutine substrate's greenlets) rather than each parking on
/// its own condvar. The hub is the only implementation; it is reached as a
/// trait so the gate does not depend on how coroutines are run.
pub trait Switcher: Any + Send + Sync {
    /// Leave the calling greenlet until it is switched back to; `turn` is
    /// the thread that holds the turn now.
    fn park(&self, py: Python<'_>, turn: Option<ThreadId>) -> PyResult<()>;
    /// Explored thread `tid`'s code returned (or never ran): its greenlet
    /// goes back to the hub next and is free for another job.
    fn job_ended(&self, tid: ThreadId);
}

/// What only the driver knows of a thread.
struct Worker {
    error: Option<PyErr>,
    /// The OS thread ident of the worker while it runs this thread's code:
    /// where a stop request (an asynchronous exception) is sent.
    ident: Option<u64>,
    /// Signalled when this thread gets the turn (or the run is aborted):
    /// one condvar per thread so a hand-over wakes only its receiver.
    cv: Arc<Condvar>,
}

/// How often a controller waiting for its threads checks for signals.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

struct State {
    turns: Turns,
    /// Lent to `turns` at each decision; taken back after the execution.
    strategy: Option<Box<dyn Strategy + Send>>,
    /// Indexed by thread id, like the core's threads.
    workers: Vec<Worker>,
    /// Jobs handed to workers whose worker has not yet returned.
    live_jobs: usize,
    deadline: Instant,
    /// Stop requests (asynchronous exceptions) were sent to its threads.
    interrupted: bool,
    /// A construct whose other outcomes are not explored ran (see
    /// `note_unexplored`): a pass of this execution proves nothing.
    unexplored: Option<&'static str>,
}

/// The shared state of one execution.
pub struct Gate {
    st: Mutex<State>,
    /// The controller's condvar: jobs done, or aborted.
    cv: Condvar,
    pub run_timeout: Duration,
    /// Set on the coroutine substrate: threads park by switching greenlets
    /// instead of waiting on their condvar.
    hub: OnceLock<Arc<dyn Switcher>>,
    /// Where the threads were when a parked thread's wait for its turn
    /// timed out: by the time the execution is judged, a thread stuck on a
    /// real lock may have gone on, and with it the reason.
    stall_positions: OnceLock<String>,
}

impl Gate {
    pub fn new(strategy: Box<dyn Strategy + Send>, run_timeout: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            st: Mutex::new(State {
                turns: Turns::new(),
                strategy: Some(strategy),
                workers: Vec::new(),
                live_jobs: 0,
                deadline: Instant::now() + run_timeout,
                interrupted: false,
                unexplored: None,
            }),
            cv: Condvar::new(),
            stall_positions: OnceLock::new(),
            run_timeout,
            hub: OnceLock::new(),
        })
    }

    /// Run this execution's threads as greenlets under `hub`.
    pub fn use_hub(&self, hub: Arc<dyn Switcher>) {
        let _ = self.hub.set(hub);
    }

    /// The coroutine hub, on the coroutine substrate.
    pub fn hub(&self) -> Option<&Arc<dyn Switcher>> {
        self.hub.get()
    }

    /// Thread `tid` read the virtual clock in its own code (see
    /// `Turns::note_clock_read`).
    pub fn note_clock_read(&self, tid: ThreadId) {
        self.lock().turns.note_clock_read(tid);
    }

    /// The thread holding the turn.
    pub fn turn(&self) -> Option<ThreadId> {
        self.lock().turns.turn()
    }

    /// What a thread starting now (holding the turn) finds: the result of
    /// its first step, or the abort that ended the execution first.
    pub fn start_of(&self, tid: ThreadId) -> Result<i64, Abort> {
        self.lock().turns.turn_result(tid).unwrap_or(Ok(0))
    }

    /// Wake the thread that now holds the turn.
    /// Signalled after the mutex is released, so the woken thread does not
    /// immediately block on it.
    fn turn_cv(st: &State) -> Option<Arc<Condvar>> {
        st.turns
            .turn()
            .and_then(|t| st.workers.get(t))
            .map(|w| w.cv.clone())
    }

    /// Wake everyone: the run is over or aborted.
    fn wake_all(&self, st: &State) {
        for w in &st.workers {
            w.cv.notify_all();
        }
        self.cv.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a thread parked before its start (a pure yield point).
    pub fn add_thread(&self, name: String, started: bool) -> ThreadId {
        let mut st = self.lock();
        let tid = st.turns.add_thread(name, started);
        st.workers.push(Worker {
            error: None,
            ident: None,
            cv: Arc::new(Condvar::new()),
        });
        st.live_jobs += 1;
        tid
    }

    /// The step counter, and its value now.
    pub fn steps(&self) -> (Arc<AtomicUsize>, usize) {
        self.lock().turns.steps()
    }

    /// Record that the program used `what`, a construct some of whose
    /// outcomes the search does not explore; the first one is kept.
    pub fn note_unexplored(&self, what: &'static str) {
        self.lock().unexplored.get_or_insert(what);
    }

    /// The construct recorded by `note_unexplored`, if any.
    pub fn unexplored(&self) -> Option<&'static str> {
        let st = self.lock();
        st.unexplored.or_else(|| {
            st.turns.timeouts_cut().then_some(
                "a timed wait in a loop that timed out more often than the search follows \
                 (frontrun_engine::turns::MAX_TIMEOUTS per thread and execution)",
            )
        })
    }

    pub fn vnow(&self) -> f64 {
        self.lock().turns.vnow()
    }

    /// Take the strategy back once the execution is over.
    pub fn take_strategy(&self) -> Option<Box<dyn Strategy + Send>> {
        self.lock().strategy.take()
    }

    /// Start the execution: the first decision, made by the controller.
    pub fn kick(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.deadline = Instant::now() + self.run_timeout;
        // The turn holder is woken by `wait_jobs`, once the controller has
        // released the GIL, so it does not wake only to wait for the GIL.
        if !matches!(st.turns.decide(lend(&mut st.strategy)), Decision::Run(_)) {
            self.wake_all(st);
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
        op: Option<Box<dyn CoopOp>>,
        loc: Option<Loc>,
        what: Option<String>,
    ) -> PyResult<i64> {
        // Read before taking the lock: it reads Python frames.
        let wait_state = op
            .as_ref()
            .filter(|o| o.timeout().is_some())
            .map(|_| crate::tracer::wait_state::fingerprint(py));
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(state) = wait_state {
            st.turns.note_wait_state(tid, state);
        }
        match st
            .turns
            .point(lend(&mut st.strategy), tid, event, op, loc, what)
        {
            PointOutcome::Continue(v) => return Ok(v),
            // Woken in `wait_turn` once our GIL is released.
            PointOutcome::Park { wake_all } => {
                if wake_all {
                    self.wake_all(st);
                }
            }
            PointOutcome::Raise { abort, wake_all } => {
                if wake_all {
                    self.wake_all(st);
                }
                return Err(abort_error(&abort));
            }
        }
        drop(guard);
        self.wait_turn(py, tid)
    }

    /// Park (GIL released) until `tid` holds the turn.
    pub fn wait_turn(&self, py: Python<'_>, tid: ThreadId) -> PyResult<i64> {
        if let Some(hub) = self.hub.get() {
            return self.wait_turn_switching(py, tid, &**hub);
        }
        py.allow_threads(|| self.wait_turn_nogil(tid)).map_err(|a| {
            if matches!(a, Abort::Timeout(_)) && self.stall_positions.get().is_none() {
                let at = self.where_threads_are(py);
                let _ = self.stall_positions.set(at);
            }
            abort_error(&a)
        })
    }

    /// Where each unfinished thread stands (see [`stall::where_threads_are`]).
    pub fn where_threads_are(&self, py: Python<'_>) -> String {
        stall::where_threads_are(py, self.running(), self.positions(py))
    }

    /// Where the threads were when the first wait for a turn timed out.
    pub fn stall_positions(&self) -> Option<&str> {
        self.stall_positions.get().map(String::as_str)
    }

    /// [`Gate::stall_positions`], waiting up to `limit` for the thread whose
    /// wait timed out to record them, if one did.
    pub fn stall_positions_within(&self, py: Python<'_>, limit: Duration) -> Option<&str> {
        if !matches!(self.aborted(), Some(Abort::Timeout(_))) {
            return self.stall_positions();
        }
        let until = Instant::now() + limit;
        while self.stall_positions.get().is_none() && Instant::now() < until {
            py.allow_threads(|| std::thread::sleep(Duration::from_millis(5)));
        }
        self.stall_positions()
    }

    /// The coroutine substrate's `wait_turn`: switch greenlets until one
    /// switches back with the turn (or the execution was stopped).
    fn wait_turn_switching(
        &self,
        py: Python<'_>,
        tid: ThreadId,
        hub: &dyn Switcher,
    ) -> PyResult<i64> {
        loop {
            let turn = {
                let mut st = self.lock();
                if let Some(r) = st.turns.turn_result(tid) {
                    return r.map_err(|a| abort_error(&a));
                }
                // Greenlets switch among themselves without the hub: the
                // run deadline is checked here too.
                if Instant::now() >= st.deadline {
                    let limit = format!("{:?}", self.run_timeout);
                    let a = st.turns.time_out(tid, &limit);
                    return Err(abort_error(&a));
                }
                st.turns.turn()
            };
            hub.park(py, turn)?;
        }
    }

    /// Block until `tid` holds the turn; the caller must not hold the GIL.
    pub fn wait_turn_nogil(&self, tid: ThreadId) -> Result<i64, Abort> {
        let mut st = self.lock();
        if st.turns.turn() != Some(tid) {
            if let Some(cv) = Self::turn_cv(&st) {
                drop(st);
                cv.notify_one();
                st = self.lock();
            }
        }
        loop {
            if let Some(r) = st.turns.turn_result(tid) {
                return r;
            }
            let now = Instant::now();
            if now >= st.deadline {
                let limit = format!("{:?}", self.run_timeout);
                let a = st.turns.time_out(tid, &limit);
                self.wake_all(&st);
                return Err(a);
            }
            let wait = st.deadline - now;
            let cv = st.workers[tid].cv.clone();
            st = cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Thread `tid` returned (or raised `error`): pass the turn on.
    pub fn finish(&self, tid: ThreadId, error: Option<PyErr>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.workers[tid].error = error;
        // Otherwise the worker wakes the new turn holder once it released
        // the GIL (`wake`).
        if st.turns.finish(lend(&mut st.strategy), tid) {
            self.wake_all(st);
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
        if let Some(t) = self.lock().workers.get_mut(tid) {
            t.ident = ident;
        }
    }

    /// (name, OS ident) of every thread still running its code: those the
    /// gate cannot stop by itself.
    pub fn running(&self) -> Vec<(String, u64)> {
        let st = self.lock();
        st.workers
            .iter()
            .enumerate()
            .filter(|(tid, _)| !st.turns.is_finished(*tid))
            .filter_map(|(tid, w)| Some((st.turns.name(tid).to_owned(), w.ident?)))
            .collect()
    }

    /// (name, OS ident) of the thread holding the turn, if it is running.
    pub fn turn_holder(&self) -> Option<(String, u64)> {
        let st = self.lock();
        let tid = st.turns.turn()?;
        let ident = st.workers.get(tid)?.ident?;
        Some((st.turns.name(tid).to_owned(), ident))
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
        for (tid, w) in st.workers.iter().enumerate() {
            if let (Some(ident), false) = (w.ident, st.turns.is_finished(tid)) {
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
        st.turns.abort(why);
        self.wake_all(&st);
    }

    pub fn aborted(&self) -> Option<Abort> {
        self.lock().turns.aborted()
    }

    /// The run deadline of this execution.
    pub fn deadline(&self) -> Instant {
        self.lock().deadline
    }

    /// Where every unfinished thread stands: (name, last location).
    pub fn positions(&self, py: Python<'_>) -> Vec<(String, Option<Loc>)> {
        let raw: Vec<(String, Option<Loc>, u64)> = {
            let st = self.lock();
            (0..st.turns.thread_count())
                .filter_map(|tid| st.turns.position(tid))
                .map(|(name, loc, site)| (name.to_owned(), loc.cloned(), site))
                .collect()
        };
        raw.into_iter()
            .map(|(name, loc, site)| {
                let traced = (site != 0)
                    .then(|| crate::tracer::site_location(py, site))
                    .flatten()
                    .map(|s| Loc {
                        file: s.file,
                        line: s.line,
                        function: s.function,
                        via: None,
                    });
                (name, traced.or(loc))
            })
            .collect()
    }

    /// Every exception raised by a thread, in thread order, other than our
    /// own aborts.
    pub fn take_errors(&self, py: Python<'_>) -> Vec<(String, PyErr)> {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.workers
            .iter_mut()
            .enumerate()
            .filter_map(|(tid, w)| {
                let e = w.error.take()?;
                (!e.is_instance_of::<ExplorationAborted>(py))
                    .then(|| (st.turns.name(tid).to_owned(), e))
            })
            .collect()
    }

    pub fn thread_names(&self) -> Vec<String> {
        self.lock().turns.thread_names()
    }

    pub fn is_finished(&self, tid: ThreadId) -> bool {
        self.lock().turns.is_finished(tid)
    }

    /// The executed steps, in order.
    pub fn take_trace(&self) -> Vec<TraceStep> {
        self.lock().turns.take_trace()
    }

    pub fn forced(&self) -> Vec<ThreadId> {
        self.lock().turns.forced().to_vec()
    }
}

/// The strategy, lent to one decision.
fn lend(s: &mut Option<Box<dyn Strategy + Send>>) -> Option<&mut dyn Strategy> {
    s.as_deref_mut().map(|s| s as &mut dyn Strategy)
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
