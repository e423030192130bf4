//! Cooperative `Lock`, `RLock` and `Condition`.
//!
//! On an explored thread every operation is a scheduling point whose
//! enabledness comes from the primitive's state (a lock is takeable iff free,
//! or owned by the caller for an `RLock`). Anywhere else they behave like the
//! real ones. `Semaphore`, `Event`, `Barrier` and the `queue` classes are
//! built by the standard library from `Lock` and `Condition`, so they become
//! cooperative through these two.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use frontrun_engine::event::{Access, AccessKind, Event, Key, ThreadId};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::ctx::{caller_loc, current, os_owner};
use crate::tracer::registry;
use crate::tracer::user_frame::made_by_untraced_package;
use frontrun_engine::coop::{Blocked, CoopOp};

#[derive(Default)]
struct LockState {
    /// A `ThreadId` on explored threads, `OS_OWNER | n` elsewhere.
    owner: Option<u64>,
    count: u32,
}

type Shared<T> = Arc<Mutex<T>>;

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wake-ups for primitives used outside explorations: one process-wide
/// condvar, with short bounded waits so a missed notify costs little.
static FALLBACK: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
const POLL: Duration = Duration::from_millis(5);

fn fallback_notify() {
    let _g = guard(&FALLBACK.0);
    FALLBACK.1.notify_all();
}

/// Retry `attempt` until it succeeds or `timeout` passes (None: forever, as
/// the real primitives do), sleeping with the GIL released in between. A
/// signal handler that raises (Ctrl-C's `KeyboardInterrupt`) ends the wait
/// with its exception, as it does for the real primitives.
fn fallback_wait(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut attempt: impl FnMut() -> bool,
) -> PyResult<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if attempt() {
            return Ok(true);
        }
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(false);
                }
                (d - now).min(POLL)
            }
            None => POLL,
        };
        py.allow_threads(|| {
            let g = guard(&FALLBACK.0);
            let _ = FALLBACK.1.wait_timeout(g, slice);
        });
        py.check_signals()?;
    }
}

fn timeout_arg(blocking: bool, timeout: f64) -> PyResult<Option<Option<Duration>>> {
    if !blocking {
        if timeout != -1.0 {
            return Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        return Ok(None);
    }
    if timeout < 0.0 && timeout != -1.0 {
        return Err(PyValueError::new_err(
            "timeout value must be a non-negative number",
        ));
    }
    // Past what a Duration holds (inf, 1e300): wait without a limit.
    Ok(Some(if timeout >= 0.0 {
        Duration::try_from_secs_f64(timeout).ok()
    } else {
        None
    }))
}

/// The key of a primitive's own state (waiters, flags), distinct from the
/// attribute keys the tracer records: reading `cond.wait` must not conflict
/// with a notify.
const STATE_KEY: Key = Key::Exact(0x5EED_C00F_0000_0001);

fn one(obj: u64, kind: AccessKind) -> Event {
    let key = match kind {
        AccessKind::Read | AccessKind::Write => STATE_KEY,
        _ => Key::Any,
    };
    Event::new(vec![Access { obj, key, kind }], 0)
}

/// Taking lock `obj`. An attempt that may fail (timed, or non-blocking) also
/// reads whether the lock is held: its outcome depends on where it falls
/// relative to the holder's release, so the two must be reordered too
/// (an untimed acquire just waits, and races only with other acquires).
fn acquire_event(obj: u64, may_fail: bool) -> Event {
    let mut accesses = vec![Access {
        obj,
        key: Key::Any,
        kind: AccessKind::Acquire,
    }];
    if may_fail {
        accesses.push(Access::read(obj, STATE_KEY));
    }
    Event::new(accesses, 0)
}

/// Giving lock `obj` back: changes whether it is held (see `acquire_event`).
/// Releases of one lock are ordered by the acquires between them, so this
/// write adds no race among them.
fn release_event(obj: u64) -> Event {
    Event::new(
        vec![
            Access {
                obj,
                key: Key::Any,
                kind: AccessKind::Release,
            },
            Access::write(obj, STATE_KEY),
        ],
        0,
    )
}

struct AcquireOp {
    st: Shared<LockState>,
    me: u64,
    reentrant: bool,
    /// Non-blocking: always enabled, reports whether it got the lock.
    blocking: bool,
    timeout: Option<f64>,
    name: &'static str,
    /// Restore this recursion count (a `Condition.wait` re-acquiring).
    count: u32,
}

impl AcquireOp {
    fn free_for(&self, s: &LockState) -> bool {
        s.owner.is_none() || (self.reentrant && s.owner == Some(self.me))
    }
}

impl CoopOp for AcquireOp {
    fn enabled(&self, _tid: ThreadId, _finished: &[bool]) -> bool {
        !self.blocking || self.free_for(&guard(&self.st))
    }
    fn apply(&mut self, _tid: ThreadId, timed_out: bool) -> i64 {
        let mut s = guard(&self.st);
        if timed_out || !self.free_for(&s) {
            return 0;
        }
        s.owner = Some(self.me);
        s.count += self.count;
        1
    }
    fn timeout(&self) -> Option<f64> {
        self.timeout
    }
    fn blocked_on(&self) -> Blocked {
        let owner = guard(&self.st).owner.filter(|o| *o < super::ctx::OS_OWNER);
        Blocked::Lock {
            what: self.name.to_string(),
            owner: owner.map(|o| o as ThreadId),
        }
    }
}

/// Releasing (fully, for `Condition.wait`) and optionally queueing a waiter.
struct ReleaseOp {
    st: Shared<LockState>,
    full: bool,
    waiter: Option<(Shared<CondState>, u64)>,
}

impl CoopOp for ReleaseOp {
    fn enabled(&self, _tid: ThreadId, _finished: &[bool]) -> bool {
        true
    }
    fn apply(&mut self, _tid: ThreadId, _timed_out: bool) -> i64 {
        let mut s = guard(&self.st);
        s.count = if self.full {
            0
        } else {
            s.count.saturating_sub(1)
        };
        if s.count == 0 {
            s.owner = None;
        }
        if let Some((c, ticket)) = &self.waiter {
            guard(c).waiters.push((*ticket, false));
        }
        1
    }
    fn blocked_on(&self) -> Blocked {
        Blocked::Nothing
    }
}

/// A lock; `reentrant` makes it an `RLock`.
#[pyclass(module = "frontrun._native", name = "CoopLock", frozen)]
pub struct CoopLock {
    st: Shared<LockState>,
    reentrant: bool,
    /// Made by an untraced package (see [`made_by_untraced_package`]): it
    /// guards only that package's state, which frontrun does not trace, so
    /// ordering its critical sections reaches nothing the exploration
    /// observes. Taking it free and giving it back are therefore not
    /// scheduling points (as for such a lock made before `explore()`); a
    /// thread finding it held still waits at one.
    library: bool,
}

impl CoopLock {
    fn name(&self) -> &'static str {
        if self.reentrant {
            "RLock"
        } else {
            "Lock"
        }
    }

    fn id(slf: &Bound<'_, Self>) -> u64 {
        registry::id_of(slf.py(), slf.as_any())
    }

    /// Take the lock on behalf of `me`, adding `count` recursion levels.
    fn acquire_impl(
        slf: &Bound<'_, Self>,
        blocking: bool,
        timeout: Option<Duration>,
        count: u32,
    ) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        if let Some((gate, tid)) = current() {
            let me = tid as u64;
            if this.reentrant && guard(&this.st).owner == Some(me) {
                guard(&this.st).count += count;
                return Ok(true);
            }
            if this.library {
                let mut s = guard(&this.st);
                if s.owner.is_none() {
                    s.owner = Some(me);
                    s.count += count;
                    return Ok(true);
                }
                if !blocking {
                    return Ok(false);
                }
            }
            let op = AcquireOp {
                st: this.st.clone(),
                me,
                reentrant: this.reentrant,
                blocking,
                timeout: timeout.filter(|_| blocking).map(|t| t.as_secs_f64()),
                name: this.name(),
                count,
            };
            let what = format!("acquire {}", this.name());
            let r = gate.point(
                py,
                tid,
                acquire_event(Self::id(slf), !blocking || timeout.is_some()),
                Some(Box::new(op)),
                caller_loc(py),
                Some(what),
            )?;
            return Ok(r != 0);
        }
        let me = os_owner();
        let st = this.st.clone();
        let reentrant = this.reentrant;
        let attempt = || {
            let mut s = guard(&st);
            if s.owner.is_none() || (reentrant && s.owner == Some(me)) {
                s.owner = Some(me);
                s.count += count;
                true
            } else {
                false
            }
        };
        if !blocking {
            return Ok(attempt());
        }
        fallback_wait(py, timeout, attempt)
    }

    /// Give the lock back; `full` drops every recursion level (returned).
    fn release_impl(
        slf: &Bound<'_, Self>,
        full: bool,
        waiter: Option<(Shared<CondState>, u64)>,
    ) -> PyResult<u32> {
        let py = slf.py();
        let this = slf.get();
        let sched = current();
        let me = sched.as_ref().map_or_else(os_owner, |(_, t)| *t as u64);
        let count = {
            let s = guard(&this.st);
            let owned = if this.reentrant {
                s.owner == Some(me)
            } else {
                s.owner.is_some()
            };
            if !owned {
                return Err(PyRuntimeError::new_err(if this.reentrant {
                    "cannot release un-acquired lock"
                } else {
                    "release unlocked lock"
                }));
            }
            s.count
        };
        let partial = this.reentrant && !full && count > 1;
        match sched {
            Some((gate, tid)) if !partial && !this.library => {
                let op = ReleaseOp {
                    st: this.st.clone(),
                    full,
                    waiter: waiter.clone(),
                };
                gate.point(
                    py,
                    tid,
                    release_event(Self::id(slf)),
                    Some(Box::new(op)),
                    caller_loc(py),
                    Some(format!("release {}", this.name())),
                )?;
            }
            _ => {
                let mut s = guard(&this.st);
                s.count = if full { 0 } else { s.count.saturating_sub(1) };
                if s.count == 0 {
                    s.owner = None;
                }
                if let Some((c, ticket)) = waiter {
                    guard(&c).waiters.push((ticket, false));
                }
                drop(s);
                fallback_notify();
            }
        }
        Ok(count)
    }

    /// What `threading.Condition` accepts as owning its lock: a plain `Lock`
    /// only needs to be locked (by anyone), an `RLock` must be ours.
    fn held_for_condition(&self) -> bool {
        self.owned_by_me() || (!self.reentrant && guard(&self.st).owner.is_some())
    }

    fn owned_by_me(&self) -> bool {
        let me = current().map_or_else(os_owner, |(_, t)| t as u64);
        guard(&self.st).owner == Some(me)
    }
}

#[pymethods]
impl CoopLock {
    #[new]
    #[pyo3(signature = (reentrant = false))]
    fn new(py: Python<'_>, reentrant: bool) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            Ok(CoopLock {
                st: Arc::default(),
                reentrant,
                library: super::ctx::coop_active() && made_by_untraced_package(py),
            })
        })
    }

    #[pyo3(signature = (blocking = true, timeout = -1.0), text_signature = "($self, blocking=True, timeout=-1.0)")]
    fn acquire(slf: &Bound<'_, Self>, blocking: bool, timeout: f64) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            let t = timeout_arg(blocking, timeout)?;
            Self::acquire_impl(slf, t.is_some(), t.flatten(), 1)
        })
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        crate::ffi_guard::guard(|| Self::release_impl(slf, false, None).map(drop))
    }

    fn locked(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(guard(&self.st).owner.is_some()))
    }

    fn _is_owned(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.owned_by_me()))
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Self::acquire_impl(slf, true, None, 1))
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(slf: &Bound<'_, Self>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        crate::ffi_guard::guard(|| Self::release_impl(slf, false, None).map(drop))
    }

    fn __repr__(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| {
            Ok({
                let s = guard(&self.st);
                let state = if s.owner.is_some() {
                    "locked"
                } else {
                    "unlocked"
                };
                format!("<frontrun cooperative {} {state}>", self.name())
            })
        })
    }
}

#[derive(Default)]
pub struct CondState {
    next_ticket: u64,
    /// (ticket, notified), in wait order.
    waiters: Vec<(u64, bool)>,
}

/// Waiting to be notified (or to time out) after having released the lock.
struct WakeOp {
    cond: Shared<CondState>,
    ticket: u64,
    timeout: Option<f64>,
}

impl CoopOp for WakeOp {
    fn enabled(&self, _tid: ThreadId, _finished: &[bool]) -> bool {
        guard(&self.cond)
            .waiters
            .iter()
            .any(|&(t, n)| t == self.ticket && n)
    }
    fn apply(&mut self, _tid: ThreadId, _timed_out: bool) -> i64 {
        let mut c = guard(&self.cond);
        let notified = c.waiters.iter().any(|&(t, n)| t == self.ticket && n);
        c.waiters.retain(|&(t, _)| t != self.ticket);
        i64::from(notified)
    }
    fn timeout(&self) -> Option<f64> {
        self.timeout
    }
    fn blocked_on(&self) -> Blocked {
        Blocked::Signal("Condition.notify".into())
    }
}

struct NotifyOp {
    cond: Shared<CondState>,
    n: usize,
}

impl CoopOp for NotifyOp {
    fn enabled(&self, _tid: ThreadId, _finished: &[bool]) -> bool {
        true
    }
    fn apply(&mut self, _tid: ThreadId, _timed_out: bool) -> i64 {
        notify_waiters(&self.cond, self.n);
        1
    }
    fn blocked_on(&self) -> Blocked {
        Blocked::Nothing
    }
}

fn notify_waiters(cond: &Mutex<CondState>, n: usize) {
    let mut c = guard(cond);
    for w in c.waiters.iter_mut().filter(|w| !w.1).take(n) {
        w.1 = true;
    }
}

/// A condition variable over a cooperative lock (a new `RLock` by default).
#[pyclass(module = "frontrun._native", name = "CoopCondition", frozen)]
pub struct CoopCondition {
    lock: Py<CoopLock>,
    st: Shared<CondState>,
}

impl CoopCondition {
    fn wait_impl(slf: &Bound<'_, Self>, timeout: Option<Duration>) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        let lock = this.lock.bind(py);
        if !lock.get().held_for_condition() {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let ticket = {
            let mut c = guard(&this.st);
            c.next_ticket += 1;
            c.next_ticket
        };
        let count = CoopLock::release_impl(lock, true, Some((this.st.clone(), ticket)))?;
        let notified = match current() {
            Some((gate, tid)) => {
                let op = WakeOp {
                    cond: this.st.clone(),
                    ticket,
                    timeout: timeout.map(|t| t.as_secs_f64()),
                };
                let id = registry::id_of(py, slf.as_any());
                let r = gate.point(
                    py,
                    tid,
                    one(id, AccessKind::Write),
                    Some(Box::new(op)),
                    caller_loc(py),
                    Some("wake from Condition.wait".into()),
                );
                match r {
                    Ok(r) => r != 0,
                    Err(e) => return Err(e),
                }
            }
            None => {
                let st = this.st.clone();
                let got = fallback_wait(py, timeout, || {
                    guard(&st).waiters.iter().any(|&(t, n)| t == ticket && n)
                });
                guard(&st).waiters.retain(|&(t, _)| t != ticket);
                match got {
                    Ok(got) => got,
                    Err(e) => {
                        // As `threading.Condition.wait`: the lock is held
                        // again when the interruption propagates.
                        CoopLock::acquire_impl(lock, true, None, count.max(1))?;
                        return Err(e);
                    }
                }
            }
        };
        CoopLock::acquire_impl(lock, true, None, count.max(1))?;
        Ok(notified)
    }

    fn notify_impl(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lock = this.lock.bind(py).get();
        if !lock.held_for_condition() {
            return Err(PyRuntimeError::new_err("cannot notify on un-acquired lock"));
        }
        // An untraced package's condition: its notify is ordered like the
        // package's lock (see `CoopLock::library`); a waiter still waits at
        // a scheduling point and runs once notified.
        match current().filter(|_| !lock.library) {
            Some((gate, tid)) => {
                let id = registry::id_of(py, slf.as_any());
                let op = NotifyOp {
                    cond: this.st.clone(),
                    n,
                };
                gate.point(
                    py,
                    tid,
                    one(id, AccessKind::Write),
                    Some(Box::new(op)),
                    caller_loc(py),
                    Some("notify Condition".into()),
                )?;
            }
            None => {
                notify_waiters(&this.st, n);
                fallback_notify();
            }
        }
        Ok(())
    }
}

/// Origin of `wait_for`'s real-time deadlines outside explorations.
static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn opt_timeout(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must be a number")),
        // Past what a Duration holds (inf, 1e300): wait without a limit.
        Some(t) => Ok(Duration::try_from_secs_f64(t.max(0.0)).ok()),
    }
}

#[pymethods]
impl CoopCondition {
    #[new]
    #[pyo3(signature = (lock = None))]
    fn new(py: Python<'_>, lock: Option<Py<CoopLock>>) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            let lock = match lock {
                Some(l) => l,
                None => {
                    let l = Py::new(
                        py,
                        CoopLock {
                            st: Arc::default(),
                            reentrant: true,
                            library: super::ctx::coop_active() && made_by_untraced_package(py),
                        },
                    )?;
                    if super::ctx::coop_active() {
                        registry::id_of(py, l.bind(py).as_any());
                    }
                    l
                }
            };
            Ok(CoopCondition {
                lock,
                st: Arc::default(),
            })
        })
    }

    #[pyo3(signature = (blocking = true, timeout = -1.0), text_signature = "($self, blocking=True, timeout=-1.0)")]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        crate::ffi_guard::guard(|| CoopLock::acquire(self.lock.bind(py), blocking, timeout))
    }

    fn release(&self, py: Python<'_>) -> PyResult<()> {
        crate::ffi_guard::guard(|| CoopLock::release(self.lock.bind(py)))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        crate::ffi_guard::guard(|| CoopLock::__enter__(self.lock.bind(py)))
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        crate::ffi_guard::guard(|| CoopLock::release(self.lock.bind(py)))
    }

    fn _is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.lock.bind(py).get().owned_by_me()))
    }

    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Self::wait_impl(slf, opt_timeout(timeout)?))
    }

    #[pyo3(signature = (predicate, timeout = None))]
    fn wait_for(
        slf: &Bound<'_, Self>,
        predicate: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        crate::ffi_guard::guard(|| {
            let timeout = opt_timeout(timeout)?;
            // On an explored thread the deadline is on the execution's virtual
            // clock, which the timed-out wait moves to it.
            let clock = current().map(|(gate, _)| gate);
            let now = || match &clock {
                Some(g) => Duration::from_secs_f64(g.vnow()),
                None => START.elapsed(),
            };
            let end = timeout.map(|t| now() + t);
            loop {
                let r = predicate.call0()?;
                if r.is_truthy()? {
                    return Ok(r.unbind());
                }
                let left = match end {
                    Some(e) => {
                        let n = now();
                        if n >= e {
                            return Ok(r.unbind());
                        }
                        Some(e - n)
                    }
                    None => None,
                };
                if !Self::wait_impl(slf, left)? && timeout.is_some() {
                    return predicate.call0().map(Bound::unbind);
                }
            }
        })
    }

    #[pyo3(signature = (n = 1))]
    fn notify(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        crate::ffi_guard::guard(|| Self::notify_impl(slf, n))
    }

    fn notify_all(slf: &Bound<'_, Self>) -> PyResult<()> {
        crate::ffi_guard::guard(|| Self::notify_impl(slf, usize::MAX))
    }

    #[pyo3(name = "notifyAll")]
    fn notify_all_alias(slf: &Bound<'_, Self>) -> PyResult<()> {
        crate::ffi_guard::guard(|| Self::notify_impl(slf, usize::MAX))
    }

    fn __repr__(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| {
            Ok({
                format!(
                    "<frontrun cooperative Condition, {} waiting>",
                    guard(&self.st).waiters.len()
                )
            })
        })
    }
}
