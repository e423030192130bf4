//! Parks and releases the threads of one `TraceExecutor` run.
//!
//! The turn-taking rules live in the engine's [`MarkerSchedule`]; this module
//! adds the real waiting: a mutex around the schedule, a condition variable
//! the threads park on with the GIL released, bounded deadlines, and the first
//! failure of the run. Lock order: the GIL may be held when taking the mutex,
//! but the GIL is never requested while the mutex is held.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use frontrun_engine::marker_schedule::{
    Decision, MarkerSchedule, ScheduleError, Step, ThreadIdx, ThreadState,
};
use frontrun_engine::markers::{DuplicateMarker, FileMarkers};
use pyo3::prelude::*;

/// How often `wait` wakes up to let Python handle signals such as Ctrl-C.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// Why a run cannot complete; the first one recorded is what `wait` raises.
pub enum Failure {
    /// A thread raised.
    Thread {
        /// Its name.
        name: String,
        /// What it raised.
        err: PyErr,
    },
    /// The schedule was violated.
    Schedule(ScheduleError),
    /// The pending step's marker is in none of the scanned files.
    MarkerNotFound {
        /// The step.
        step: Step,
        /// Its 1-based position.
        position: usize,
        /// Files whose markers were read during the run.
        files: Vec<String>,
    },
    /// A file reached by a traced thread defines a marker twice.
    Duplicate {
        /// The file.
        file: String,
        /// The clash.
        dup: DuplicateMarker,
    },
    /// A parked thread waited longer than the park limit.
    ParkTimeout(String),
}

/// Why a parked or traced thread must stop.
pub enum Stop {
    /// The run was aborted: unwind with this reason.
    Aborted(String),
    /// This thread waited too long for its turn.
    ParkTimeout(String),
    /// The park listener raised.
    Listener(PyErr),
}

/// Mutable state of a run, under [`Gate::state`].
pub struct GateState {
    /// The turn-taking rules.
    pub sched: MarkerSchedule,
    /// First failure.
    pub failure: Option<Failure>,
    /// Set once when the run is aborted.
    pub abort_reason: Option<String>,
    /// `threading.get_ident()` of each started thread.
    pub idents: Vec<Option<u64>>,
    /// Where each paused thread stopped: `file:line`.
    pub paused_at: Vec<Option<String>>,
    /// Files whose markers traced threads looked up, with what they hold.
    pub files: BTreeMap<String, Option<Arc<FileMarkers>>>,
}

/// The shared gate of one run.
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
    /// Mirrors `abort_reason.is_some()` so the line tracer can check it
    /// without locking.
    aborted: AtomicBool,
    /// Set once every step is taken: the tracers may step aside.
    released: AtomicBool,
    park_timeout: Duration,
    /// Called as `listener(thread_index, what)` with the GIL held: `what` is
    /// `"park"` just before a thread parks, then `"resume"` when it may go on
    /// or `"abort"` when it must unwind. The async executor uses it to hand
    /// the event loop back and forth.
    listener: Option<Py<PyAny>>,
}

impl Gate {
    /// A gate over `steps`; a parked thread gives up after `park_timeout`.
    pub fn new(steps: Vec<Step>, park_timeout: Duration, listener: Option<Py<PyAny>>) -> Self {
        let steps_empty = steps.is_empty();
        Gate {
            state: Mutex::new(GateState {
                sched: MarkerSchedule::new(steps),
                failure: None,
                abort_reason: None,
                idents: Vec::new(),
                paused_at: Vec::new(),
                files: BTreeMap::new(),
            }),
            cv: Condvar::new(),
            aborted: AtomicBool::new(false),
            released: AtomicBool::new(steps_empty),
            park_timeout,
            listener,
        }
    }

    /// Lock the state. Poisoning only follows a panic in another thread while
    /// it held the lock; every update is a few field writes that leave the
    /// state consistent, so the data is still usable.
    pub fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the run was aborted.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Whether the schedule is exhausted and every thread runs freely.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Declare a thread.
    pub fn register(&self, name: &str) -> Result<ThreadIdx, ScheduleError> {
        let mut st = self.lock();
        let idx = st.sched.register(name)?;
        st.idents.push(None);
        st.paused_at.push(None);
        Ok(idx)
    }

    /// Whether thread `t` is governed by the schedule (and must be traced).
    pub fn is_scheduled(&self, t: ThreadIdx) -> bool {
        self.lock().sched.is_scheduled(t)
    }

    /// Remember a file a traced thread looked at.
    pub fn note_file(&self, path: &str, markers: Option<Arc<FileMarkers>>) {
        let mut st = self.lock();
        if !st.files.contains_key(path) {
            st.files.insert(path.to_owned(), markers);
        }
    }

    /// Record `failure` unless one is already recorded.
    pub fn fail(&self, failure: Failure) {
        let mut st = self.lock();
        record(&mut st, failure);
        self.cv.notify_all();
    }

    /// Abort the run: every parked thread wakes and unwinds, and traced
    /// threads unwind at their next line.
    pub fn abort(&self, reason: &str) {
        let mut st = self.lock();
        self.abort_locked(&mut st, reason);
    }

    fn abort_locked(&self, st: &mut GateState, reason: &str) {
        if st.abort_reason.is_none() {
            st.abort_reason = Some(reason.to_owned());
            self.aborted.store(true, Ordering::Release);
        }
        self.cv.notify_all();
    }

    /// Thread `t` starts; returns once it may run its function.
    pub fn on_start(&self, py: Python<'_>, t: ThreadIdx, ident: u64) -> Result<(), Stop> {
        let decision = {
            let mut st = self.lock();
            st.idents[t] = Some(ident);
            st.sched.on_start(t)
        };
        match decision {
            Decision::Run => Ok(()),
            Decision::Pause => self.park(py, t),
        }
    }

    /// Traced thread `t` is about to execute a line tagged with `markers`, at
    /// `where_`. Returns once it may go on.
    pub fn on_marker(
        &self,
        py: Python<'_>,
        t: ThreadIdx,
        markers: &[Arc<str>],
        where_: impl FnOnce() -> String,
    ) -> Result<(), Stop> {
        {
            let mut st = self.lock();
            if st.sched.on_marker(t, markers) == Decision::Run {
                return Ok(());
            }
            if st.sched.is_exhausted() {
                self.released.store(true, Ordering::Release);
            }
            st.paused_at[t] = Some(where_());
            self.cv.notify_all();
        }
        let parked = self.park(py, t);
        self.lock().paused_at[t] = None;
        parked
    }

    /// Park `t`, telling the listener (if any) before and after.
    fn park(&self, py: Python<'_>, t: ThreadIdx) -> Result<(), Stop> {
        let Some(listener) = &self.listener else {
            return self.park_released(py, t);
        };
        listener.call1(py, (t, "park")).map_err(Stop::Listener)?;
        let parked = self.park_released(py, t);
        let what = if parked.is_ok() { "resume" } else { "abort" };
        let woke = listener.call1(py, (t, what));
        match (parked, woke) {
            (Ok(()), Err(e)) => Err(Stop::Listener(e)),
            (parked, _) => parked,
        }
    }

    /// Wait, with the GIL released, until `t` may proceed.
    fn park_released(&self, py: Python<'_>, t: ThreadIdx) -> Result<(), Stop> {
        py.allow_threads(|| {
            let deadline = Instant::now() + self.park_timeout;
            let mut st = self.lock();
            loop {
                if let Some(reason) = &st.abort_reason {
                    return Err(Stop::Aborted(reason.clone()));
                }
                if st.sched.may_proceed(t) {
                    st.sched.on_resume(t);
                    return Ok(());
                }
                let now = Instant::now();
                if now >= deadline {
                    let msg = park_timeout_message(&st, t, self.park_timeout);
                    record(&mut st, Failure::ParkTimeout(msg.clone()));
                    self.abort_locked(&mut st, &msg);
                    return Err(Stop::ParkTimeout(msg));
                }
                st = self
                    .cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        })
    }

    /// Thread `t` returned (`error` is `None`) or raised. `aborted_unwind`
    /// says the exception is the gate's own abort, not a user error.
    pub fn on_finish(&self, t: ThreadIdx, error: Option<PyErr>, aborted_unwind: bool) {
        let mut st = self.lock();
        let finished = st.sched.on_finish(t);
        let exhausted = st.sched.is_exhausted();
        match error {
            Some(err) if !aborted_unwind => {
                let name = st.sched.name(t).to_owned();
                record(&mut st, Failure::Thread { name, err });
                if !exhausted {
                    // The schedule cannot progress past a dead thread.
                    self.abort_locked(&mut st, "another thread of the run raised");
                }
            }
            _ => {
                if let Err(e) = finished {
                    record(&mut st, Failure::Schedule(e));
                    self.abort_locked(&mut st, "the schedule cannot be completed");
                }
            }
        }
        self.cv.notify_all();
    }

    /// Wait, with the GIL released, until every thread has finished or the
    /// deadline passes. Once a failure is recorded, waits at most `grace`
    /// more for the others to unwind. Returns whether all finished. Signals
    /// (Ctrl-C) are checked every [`SIGNAL_SLICE`]; their error is returned.
    pub fn wait_all(&self, py: Python<'_>, timeout: Duration, grace: Duration) -> PyResult<bool> {
        let deadline = Instant::now() + timeout;
        let mut failed_deadline: Option<Instant> = None;
        loop {
            let outcome = py.allow_threads(|| {
                let slice_end = Instant::now() + SIGNAL_SLICE;
                let mut st = self.lock();
                loop {
                    if st.sched.all_finished() {
                        return Some(true);
                    }
                    if st.failure.is_some() && failed_deadline.is_none() {
                        failed_deadline = Some(Instant::now() + grace);
                    }
                    let limit = failed_deadline.map_or(deadline, |d| d.min(deadline));
                    let now = Instant::now();
                    if now >= limit {
                        return Some(false);
                    }
                    if now >= slice_end {
                        return None;
                    }
                    st = self
                        .cv
                        .wait_timeout(st, limit.min(slice_end) - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            });
            if let Some(all_finished) = outcome {
                return Ok(all_finished);
            }
            py.check_signals()?;
        }
    }

    /// Take the run's first failure. A step left untaken is reported as a
    /// missing marker when no file seen during the whole run defines it.
    pub fn take_failure(&self) -> Option<Failure> {
        let mut st = self.lock();
        match st.failure.take()? {
            Failure::Schedule(e) => Some(marker_failure(&st, e)),
            other => Some(other),
        }
    }
}

fn record(st: &mut GateState, failure: Failure) {
    if st.failure.is_none() {
        st.failure = Some(failure);
    }
}

/// A step that can never be taken: say whether its marker exists at all.
fn marker_failure(st: &GateState, e: ScheduleError) -> Failure {
    if let ScheduleError::FinishedBeforeStep { step, position } = &e {
        let known = st
            .files
            .values()
            .flatten()
            .any(|m| m.line_of(&step.marker).is_some());
        if !known {
            return Failure::MarkerNotFound {
                step: step.clone(),
                position: *position,
                files: st.files.keys().cloned().collect(),
            };
        }
    }
    Failure::Schedule(e)
}

fn park_timeout_message(st: &GateState, t: ThreadIdx, limit: Duration) -> String {
    let pending = match st.sched.pending() {
        Some((i, step)) => format!("pending step {} {step}", i + 1),
        None => "no pending step".to_owned(),
    };
    format!(
        "thread {:?} waited {:.1} s for its turn ({pending}); call TraceExecutor.wait() \
         promptly after starting the threads, or raise park_timeout",
        st.sched.name(t),
        limit.as_secs_f64()
    )
}

/// One line per thread: its name, state and where it paused.
pub fn describe_state(state: &ThreadState, paused_at: Option<&str>) -> String {
    match state {
        ThreadState::NotStarted => "not started".to_owned(),
        ThreadState::AtStart => "waiting at its start for its first step".to_owned(),
        ThreadState::Running => "running".to_owned(),
        ThreadState::Paused(m) => match paused_at {
            Some(at) => format!("paused before marker {m:?} at {at}"),
            None => format!("paused before marker {m:?}"),
        },
        ThreadState::Finished => "finished".to_owned(),
    }
}
