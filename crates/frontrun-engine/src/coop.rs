//! Cooperative operations: pending lock, join, sleep and wait requests whose
//! enabledness depends on cooperative-primitive state (the driver keeps one per
//! blocked thread and asks it at every scheduling decision).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::event::ThreadId;

/// What a blocked thread waits for (the wait-for graph's edges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// A lock held by a thread.
    Lock {
        what: String,
        owner: Option<ThreadId>,
    },
    /// A thread to finish (join).
    Thread(ThreadId),
    /// A notification, a flag, a permit: no owner to blame.
    Signal(String),
    /// Not blocked.
    Nothing,
}

impl Blocked {
    pub fn owner(&self) -> Option<ThreadId> {
        match self {
            Blocked::Lock { owner, .. } => *owner,
            Blocked::Thread(t) => Some(*t),
            _ => None,
        }
    }

    pub fn describe(&self, names: &[String]) -> String {
        let name = |t: &ThreadId| names.get(*t).cloned().unwrap_or_else(|| format!("#{t}"));
        match self {
            Blocked::Lock {
                what,
                owner: Some(o),
            } => format!("waits for {what}, held by '{}'", name(o)),
            Blocked::Lock { what, owner: None } => format!("waits for {what}"),
            Blocked::Thread(t) => format!("waits for thread '{}' to finish", name(t)),
            Blocked::Signal(what) => format!("waits for {what}"),
            Blocked::Nothing => "runnable".into(),
        }
    }
}

/// A pending cooperative operation. `enabled` and `apply` run under the
/// gate's mutex, in whichever thread made the scheduling decision.
pub trait CoopOp: Send {
    /// Whether thread `tid` could perform it now; `finished[t]` says whether
    /// thread `t` has returned.
    fn enabled(&self, tid: ThreadId, finished: &[bool]) -> bool;
    /// Perform the state change; the value is handed back to the thread.
    /// `timed_out` is set when a timed wait fires because nothing else can run.
    fn apply(&mut self, tid: ThreadId, timed_out: bool) -> i64;
    /// May fire when every thread is blocked (a timed wait, a sleep).
    fn timed(&self) -> bool {
        self.timeout().is_some()
    }
    /// The timeout of a timed wait, in seconds: while it cannot complete, it
    /// may time out instead (a scheduling choice, see `gate`).
    fn timeout(&self) -> Option<f64> {
        None
    }
    /// Virtual seconds that pass while it runs (a timeout's, a sleep's).
    fn elapsed(&self, timed_out: bool) -> Option<f64> {
        self.timeout().filter(|_| timed_out)
    }
    fn blocked_on(&self) -> Blocked;
}

/// Waiting for a thread to finish (`Thread.join`).
pub struct JoinOp {
    pub child: ThreadId,
    pub timeout: Option<f64>,
}

impl CoopOp for JoinOp {
    fn enabled(&self, _tid: ThreadId, finished: &[bool]) -> bool {
        finished.get(self.child).copied().unwrap_or(true)
    }
    fn apply(&mut self, _tid: ThreadId, timed_out: bool) -> i64 {
        i64::from(!timed_out)
    }
    // Not a scheduling choice (no `timeout`): a child's end is not an event,
    // so DPOR could not order a timed-out join against it, and the `Join`
    // access would wrongly inherit the child's clock. It fires only when
    // nothing else can run.
    fn timed(&self) -> bool {
        self.timeout.is_some()
    }
    fn elapsed(&self, timed_out: bool) -> Option<f64> {
        self.timeout.filter(|_| timed_out)
    }
    fn blocked_on(&self) -> Blocked {
        Blocked::Thread(self.child)
    }
}

/// `time.sleep` on an explored thread: a yield that lets the others go first,
/// or not. It completes once another thread has run a step (so a polling
/// loop such as `while not ready: time.sleep(0)` makes progress under any
/// strategy); before that it may end as a timeout, under the rules of
/// repeated timeouts (see `turns`), since in real runs the others may not
/// have been scheduled while it slept. Timed, so it fires when nothing else
/// can run.
pub struct SleepOp {
    pub steps: Arc<AtomicUsize>,
    pub mark: usize,
    /// The seconds asked for: the virtual clock moves on by that much.
    pub secs: f64,
}

impl CoopOp for SleepOp {
    fn enabled(&self, _tid: ThreadId, _finished: &[bool]) -> bool {
        self.steps.load(Ordering::Relaxed) > self.mark
    }
    fn apply(&mut self, _tid: ThreadId, _timed_out: bool) -> i64 {
        1
    }
    fn timed(&self) -> bool {
        true
    }
    fn timeout(&self) -> Option<f64> {
        Some(self.secs)
    }
    fn elapsed(&self, _timed_out: bool) -> Option<f64> {
        Some(self.secs)
    }
    fn blocked_on(&self) -> Blocked {
        Blocked::Signal("the others (time.sleep)".into())
    }
}
