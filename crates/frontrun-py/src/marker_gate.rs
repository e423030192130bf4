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
    MarkerDecision, MarkerSchedule, MarkerStep, MarkerThreadState, ScheduleError, ThreadIdx,
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
        step: MarkerStep,
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
    /// No thread can take the turn.
    Deadlock(String),
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

/// What a blocked thread waits for, for the deadlock report.
pub struct BlockedOn {
    /// The lock or statement.
    pub what: String,
    /// `file:line` of the call.
    pub at: String,
    /// Backends holding the row lock, when the server said so.
    pub db_blockers: Option<Vec<i64>>,
    /// The call gives up after this many seconds by itself (a timed wait):
    /// it is not a deadlock, its timeout is respected.
    pub timeout: Option<f64>,
    /// Address of the `threading` lock waited for (alive while the thread
    /// waits in its `acquire`).
    pub lock: Option<usize>,
    /// The running thread released that lock: the call is returning.
    pub woken: bool,
}

/// A database call in progress in a traced thread.
pub struct DbCall {
    /// Distinguishes successive calls of one thread.
    pub id: u64,
    /// Backend pid of the connection.
    pub pid: i64,
    /// The connection (to derive the probe's connection from).
    pub conn: Py<PyAny>,
    /// What is executed, for reports.
    pub what: String,
    /// `file:line` of the call.
    pub at: String,
    /// The server reported it blocked.
    pub blocked: bool,
}

/// Mutable state of a run, under [`MarkerGate::state`].
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
    /// What each blocked thread waits for.
    pub blocked_on: Vec<Option<BlockedOn>>,
    /// The database call each thread is in, if any.
    pub db_calls: Vec<Option<DbCall>>,
    /// Backend pid each thread last used.
    pub pids: Vec<Option<i64>>,
    /// Files whose markers traced threads looked up, with what they hold.
    pub files: BTreeMap<String, Option<Arc<FileMarkers>>>,
    /// Bumped at every change; a stall is only reported if it stays put.
    pub version: u64,
    next_call: u64,
}

/// The shared gate of one run.
pub struct MarkerGate {
    state: Mutex<GateState>,
    cv: Condvar,
    /// Mirrors `abort_reason.is_some()` so the line tracer can check it
    /// without locking.
    aborted: AtomicBool,
    /// Set once every step is taken: markers no longer matter.
    released: AtomicBool,
    park_timeout: Duration,
    /// Called as `listener(thread_index, what)` with the GIL held: `what` is
    /// `"park"` just before a thread parks, then `"resume"` when it may go on
    /// or `"abort"` when it must unwind. The async executor uses it to hand
    /// the event loop back and forth.
    listener: Option<Py<PyAny>>,
    /// Called once with the connection of the first database call, so the
    /// executor can start its lock-wait probe.
    on_db: Option<Py<PyAny>>,
    db_seen: AtomicBool,
}

impl MarkerGate {
    /// A gate over `steps`; a parked thread gives up after `park_timeout`.
    pub fn new(
        steps: Vec<MarkerStep>,
        park_timeout: Duration,
        listener: Option<Py<PyAny>>,
        on_db: Option<Py<PyAny>>,
    ) -> Self {
        MarkerGate {
            state: Mutex::new(GateState {
                sched: MarkerSchedule::new(steps),
                failure: None,
                abort_reason: None,
                idents: Vec::new(),
                paused_at: Vec::new(),
                blocked_on: Vec::new(),
                db_calls: Vec::new(),
                pids: Vec::new(),
                files: BTreeMap::new(),
                version: 0,
                next_call: 0,
            }),
            cv: Condvar::new(),
            aborted: AtomicBool::new(false),
            released: AtomicBool::new(false),
            park_timeout,
            listener,
            on_db,
            db_seen: AtomicBool::new(false),
        }
    }

    /// Lock the state. Poisoning only follows a panic in another thread while
    /// it held the lock; every update is a few field writes that leave the
    /// state consistent, so the data is still usable.
    pub fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wake every waiter after a change of `st`.
    fn changed(&self, st: &mut GateState) {
        st.version += 1;
        if st.sched.is_exhausted() && st.sched.is_sealed() {
            self.released.store(true, Ordering::Release);
        }
        self.cv.notify_all();
    }

    /// Whether the run was aborted.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Whether every step is taken: markers pass freely.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Declare a thread.
    pub fn register(&self, name: &str) -> Result<ThreadIdx, ScheduleError> {
        let mut st = self.lock();
        let idx = st.sched.register(name)?;
        st.idents.push(None);
        st.paused_at.push(None);
        st.blocked_on.push(None);
        st.db_calls.push(None);
        st.pids.push(None);
        Ok(idx)
    }

    /// Every thread is registered: the steps may begin.
    pub fn seal(&self) {
        let mut st = self.lock();
        st.sched.seal();
        self.changed(&mut st);
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
            let d = st.sched.on_start(t);
            self.changed(&mut st);
            d
        };
        match decision {
            MarkerDecision::Run => Ok(()),
            MarkerDecision::Pause => self.park(py, t),
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
            let decision = st.sched.on_marker(t, markers);
            self.changed(&mut st);
            if decision == MarkerDecision::Run {
                return Ok(());
            }
            st.paused_at[t] = Some(where_());
        }
        let parked = self.park(py, t);
        self.lock().paused_at[t] = None;
        parked
    }

    /// Thread `t` is about to make a call that will block (`what` at `at`,
    /// giving up after `timeout` seconds if given): the turn passes on until
    /// [`MarkerGate::on_unblock`].
    pub fn on_block(
        &self,
        t: ThreadIdx,
        what: String,
        at: String,
        timeout: Option<f64>,
        lock: Option<usize>,
    ) {
        let mut st = self.lock();
        if st.sched.holds_turn(t) {
            st.sched.on_block(t);
            st.blocked_on[t] = Some(BlockedOn {
                what,
                at,
                db_blockers: None,
                timeout,
                lock,
                woken: false,
            });
            self.changed(&mut st);
        }
    }

    /// Whether thread `t` gave the turn away in a blocking call.
    pub fn is_blocked(&self, t: ThreadIdx) -> bool {
        self.lock().blocked_on[t].is_some()
    }

    /// Thread `t` (holding the turn) releases the lock at `lock`: the first
    /// thread blocked on it is returning from its call (see
    /// [`MarkerSchedule::on_wake`]).
    pub fn on_release(&self, t: ThreadIdx, lock: usize) {
        let mut st = self.lock();
        if !st.sched.holds_turn(t) || waiters_on(&st, lock, true).next().is_some() {
            return;
        }
        let Some(u) = waiters_on(&st, lock, false).find(|&u| u != t) else {
            return;
        };
        if let Some(b) = st.blocked_on[u].as_mut() {
            b.woken = true;
        }
        st.sched.on_wake(u);
        self.changed(&mut st);
    }

    /// The lock at `lock` was taken without waiting: a thread woken on it
    /// did not get it and stays blocked.
    pub fn on_taken(&self, lock: usize) {
        let mut st = self.lock();
        self.unwake(&mut st, lock);
    }

    fn unwake(&self, st: &mut GateState, lock: usize) {
        let woken: Vec<ThreadIdx> = waiters_on(st, lock, true).collect();
        for &u in &woken {
            if let Some(b) = st.blocked_on[u].as_mut() {
                b.woken = false;
            }
            st.sched.on_unwake(u);
        }
        if !woken.is_empty() {
            self.changed(st);
        }
    }

    /// Thread `t`'s blocking call returned: wait to take the turn back.
    pub fn on_unblock(&self, py: Python<'_>, t: ThreadIdx) -> Result<(), Stop> {
        let decision = {
            let mut st = self.lock();
            let Some(b) = st.blocked_on[t].take() else {
                return Ok(());
            };
            if let (Some(lock), false) = (b.lock, b.woken) {
                // Another waiter on the lock was woken, but this one got it.
                self.unwake(&mut st, lock);
            }
            let d = st.sched.on_unblock(t);
            self.changed(&mut st);
            d
        };
        match decision {
            MarkerDecision::Run => Ok(()),
            MarkerDecision::Pause => self.park(py, t),
        }
    }

    /// Thread `t` enters a database call on backend `pid`. Returns its id.
    pub fn begin_db_call(
        &self,
        py: Python<'_>,
        t: ThreadIdx,
        pid: i64,
        conn: Py<PyAny>,
        what: String,
        at: String,
    ) -> PyResult<u64> {
        if !self.db_seen.swap(true, Ordering::AcqRel) {
            if let Some(on_db) = &self.on_db {
                on_db.call1(py, (conn.clone_ref(py),))?;
            }
        }
        let mut st = self.lock();
        st.next_call += 1;
        let id = st.next_call;
        st.pids[t] = Some(pid);
        st.db_calls[t] = Some(DbCall {
            id,
            pid,
            conn,
            what,
            at,
            blocked: false,
        });
        self.changed(&mut st);
        Ok(id)
    }

    /// Thread `t`'s database call `id` returned. Returns whether it had been
    /// reported blocked (then the caller must take the turn back).
    pub fn end_db_call(&self, t: ThreadIdx, id: u64) -> bool {
        let mut st = self.lock();
        let call = st.db_calls[t].take_if(|c| c.id == id);
        self.changed(&mut st);
        call.is_some_and(|c| c.blocked)
    }

    /// The database call of the thread holding the turn, unless already
    /// known to be blocked: `(call id, pid, connection)`. Waits up to
    /// `timeout` for one; `None` if there is none or the run is over.
    pub fn db_call_to_probe(
        &self,
        py: Python<'_>,
        timeout: Duration,
    ) -> Option<(u64, i64, Py<PyAny>)> {
        let found = py.allow_threads(|| {
            let deadline = Instant::now() + timeout;
            let mut st = self.lock();
            loop {
                if st.abort_reason.is_some() || st.sched.all_finished() {
                    return None;
                }
                if let Some(t) = st.sched.turn() {
                    if let Some(c) = st.db_calls[t].as_ref().filter(|c| !c.blocked) {
                        return Some((t, c.id, c.pid));
                    }
                }
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                st = self
                    .cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        })?;
        let (t, id, pid) = found;
        let st = self.lock();
        let conn = st.db_calls[t].as_ref()?.conn.clone_ref(py);
        Some((id, pid, conn))
    }

    /// The server says database call `id` waits for a lock held by the
    /// backends `blockers`: its thread gives the turn away.
    pub fn db_call_blocked(&self, id: u64, blockers: Vec<i64>, query: Option<String>) -> bool {
        let mut st = self.lock();
        let Some(t) = (0..st.db_calls.len()).find(|&t| {
            st.db_calls[t]
                .as_ref()
                .is_some_and(|c| c.id == id && !c.blocked)
        }) else {
            return false;
        };
        if !st.sched.holds_turn(t) {
            return false;
        }
        let call = st.db_calls[t].as_mut().expect("found above");
        call.blocked = true;
        let what = match query {
            Some(q) => format!("{} {q:?}", call.what),
            None => call.what.clone(),
        };
        let at = call.at.clone();
        st.sched.on_block(t);
        st.blocked_on[t] = Some(BlockedOn {
            what,
            at,
            db_blockers: Some(blockers),
            timeout: None,
            lock: None,
            woken: false,
        });
        self.changed(&mut st);
        true
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

    /// Wait, with the GIL released, until `t` holds the turn.
    fn park_released(&self, py: Python<'_>, t: ThreadIdx) -> Result<(), Stop> {
        py.allow_threads(|| {
            let deadline = Instant::now() + self.park_timeout;
            let mut st = self.lock();
            loop {
                if let Some(reason) = &st.abort_reason {
                    return Err(Stop::Aborted(reason.clone()));
                }
                if st.sched.holds_turn(t) {
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
        st.blocked_on[t] = None;
        st.db_calls[t] = None;
        match error {
            Some(err) if !aborted_unwind => {
                let name = st.sched.name(t).to_owned();
                record(&mut st, Failure::Thread { name, err });
                if !st.sched.all_finished() {
                    // One thread at a time: the others cannot be trusted to
                    // reach their steps past a dead thread; stop them.
                    if !st.sched.is_exhausted() {
                        self.abort_locked(&mut st, "another thread of the run raised");
                    }
                }
            }
            _ => {
                if let Err(e) = finished {
                    record(&mut st, Failure::Schedule(e));
                    self.abort_locked(&mut st, "the schedule cannot be completed");
                }
            }
        }
        self.changed(&mut st);
    }

    /// Wait, with the GIL released, until every thread has finished or the
    /// deadline passes. Once a failure is recorded, waits at most `grace`
    /// more for the others to unwind. A run where no thread can take the
    /// turn is failed with a deadlock report once that state has held for
    /// [`STALL_CONFIRM`]. Returns whether all finished. Signals (Ctrl-C) are
    /// checked every [`SIGNAL_SLICE`]; their error is returned.
    pub fn wait_all(&self, py: Python<'_>, timeout: Duration, grace: Duration) -> PyResult<bool> {
        let deadline = Instant::now() + timeout;
        let mut failed_deadline: Option<Instant> = None;
        let mut stall: Option<(u64, Instant)> = None;
        loop {
            let outcome = py.allow_threads(|| {
                let slice_end = Instant::now() + SIGNAL_SLICE;
                let mut st = self.lock();
                loop {
                    if st.sched.all_finished() {
                        return Some(true);
                    }
                    if st.failure.is_none() && stalled_for_good(&st) {
                        let now = Instant::now();
                        match stall {
                            Some((v, since)) if v == st.version => {
                                if now >= since + STALL_CONFIRM {
                                    let msg = deadlock_message(&st);
                                    record(&mut st, Failure::Deadlock(msg.clone()));
                                    self.abort_locked(&mut st, &msg);
                                }
                            }
                            _ => stall = Some((st.version, now)),
                        }
                    } else {
                        stall = None;
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
                    let mut until = limit.min(slice_end);
                    if let Some((_, since)) = stall {
                        until =
                            until.min((since + STALL_CONFIRM).max(now + Duration::from_millis(1)));
                    }
                    st = self
                        .cv
                        .wait_timeout(st, until - now)
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

/// Threads blocked on the lock at `lock`, woken or not as `woken` says.
fn waiters_on(st: &GateState, lock: usize, woken: bool) -> impl Iterator<Item = ThreadIdx> + '_ {
    st.blocked_on.iter().enumerate().filter_map(move |(u, b)| {
        b.as_ref()
            .is_some_and(|b| b.lock == Some(lock) && b.woken == woken)
            .then_some(u)
    })
}

/// How long a stall must last, with nothing changing, before it is reported
/// as a deadlock: covers a blocking call that has just returned but whose
/// thread has not told the gate yet.
const STALL_CONFIRM: Duration = Duration::from_millis(100);

/// Nobody can run and the blocked threads will not return by themselves:
/// each waits without a timeout on a `threading` primitive, or on a row
/// lock held (at least partly) by a thread that is paused, not by one that
/// is blocked too (a cycle of blocked transactions is the server's to
/// break). A timed wait returns by itself when its timeout expires, so a
/// run with one is never stalled: the wait's own timeout is respected.
fn stalled_for_good(st: &GateState) -> bool {
    if !st.sched.is_stalled() {
        return false;
    }
    st.blocked_on.iter().flatten().all(|b| b.timeout.is_none())
        && st
            .blocked_on
            .iter()
            .flatten()
            .all(|b| match &b.db_blockers {
                None => true,
                Some(pids) => {
                    pids.iter()
                        .any(|p| match st.pids.iter().position(|q| *q == Some(*p)) {
                            Some(u) => !matches!(st.sched.state(u), MarkerThreadState::Blocked),
                            None => false,
                        })
                }
            })
}

fn deadlock_message(st: &GateState) -> String {
    let mut out = String::from(
        "no thread can run: every unfinished thread is paused or blocked, and the blocked \
         ones wait for paused ones (the schedule gives the turn to a blocked thread)",
    );
    if let Some((i, step)) = st.sched.pending() {
        out.push_str(&format!("; pending step {} {step}", i + 1));
    }
    out.push('.');
    for t in 0..st.sched.thread_count() {
        let name = st.sched.name(t);
        out.push_str(&format!("\n  {name}: "));
        match (&st.blocked_on[t], st.sched.state(t)) {
            (Some(b), _) => {
                out.push_str(&format!("blocked in {} at {}", b.what, b.at));
                if let Some(pids) = &b.db_blockers {
                    let holders: Vec<String> = pids
                        .iter()
                        .map(|p| match st.pids.iter().position(|q| *q == Some(*p)) {
                            Some(u) => format!("{:?} (backend {p})", st.sched.name(u)),
                            None => format!("backend {p} (not a thread of this run)"),
                        })
                        .collect();
                    out.push_str(&format!(
                        ", waiting for the row lock of {}",
                        holders.join(", ")
                    ));
                }
            }
            (None, state) => out.push_str(&describe_state(state, st.paused_at[t].as_deref())),
        }
    }
    out
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
pub fn describe_state(state: &MarkerThreadState, paused_at: Option<&str>) -> String {
    match state {
        MarkerThreadState::NotStarted => "not started".to_owned(),
        MarkerThreadState::AtStart => "waiting at its start for its first step".to_owned(),
        MarkerThreadState::Running => "running (holds the turn)".to_owned(),
        MarkerThreadState::Paused(m) => {
            let m = m.join(", ");
            match paused_at {
                Some(at) => format!("paused before marker {m:?} at {at}"),
                None => format!("paused before marker {m:?}"),
            }
        }
        MarkerThreadState::Blocked => "blocked in a call (gave the turn away)".to_owned(),
        MarkerThreadState::Returned => {
            "its blocking call returned; waiting for the turn".to_owned()
        }
        MarkerThreadState::Finished => "finished".to_owned(),
    }
}
