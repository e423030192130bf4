//! Database statements under the exploration driver: a statement whose row
//! locks are held by another (paused) transaction is a *disabled* pending
//! event, so the scheduler runs other threads, and a lock-wait cycle is a
//! deadlock the gate reports with its wait-for cycle.

use std::sync::{Arc, Mutex};

use frontrun_engine::event::Event;
use frontrun_sql::Footprint;
use pyo3::prelude::*;

use super::model::Model;
use crate::driver::gate::Loc;
use frontrun_engine::coop::{Blocked, Op};

/// A source position from Python: `(file, line, function)`.
pub type PyLoc = (String, u32, String);

/// The pending statement `fp` of transaction `txn`.
pub struct LockWaitOp {
    pub model: Arc<Mutex<Model>>,
    pub txn: u64,
    pub fp: Footprint,
    /// After a probe found the statement waiting: some transaction must end
    /// before it is worth trying again.
    pub min_epoch: u64,
}

impl LockWaitOp {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        // Poisoning only means a panic elsewhere; the model stays valid.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Op for LockWaitOp {
    fn enabled(&self, _tid: usize, _finished: &[bool]) -> bool {
        self.model().may_run(self.txn, &self.fp, self.min_epoch)
    }

    fn apply(&mut self, _tid: usize, _timed_out: bool) -> i64 {
        0
    }

    fn blocked_on(&self) -> Blocked {
        let owner = self
            .model()
            .blockers(self.txn, &self.fp)
            .into_iter()
            .flatten()
            .next();
        let what = format!("a row lock ({})", self.fp.describe());
        match owner {
            Some(o) => Blocked::Lock {
                what,
                owner: Some(o),
            },
            None if self.min_epoch > 0 => {
                Blocked::Signal(format!("{what} held by another open transaction"))
            }
            None => Blocked::Lock { what, owner: None },
        }
    }
}

/// Deliver `event` as the current explored thread's scheduling point,
/// enabled only while `op` says so (always, without one). `Ok(false)`
/// outside an exploration.
/// `loc` is the user's `file, line, function` (the caller of the driver
/// method); the innermost frame is used when it is not given.
pub fn point(
    py: Python<'_>,
    event: Event,
    op: Option<LockWaitOp>,
    loc: Option<PyLoc>,
) -> PyResult<bool> {
    let Some((gate, tid)) = crate::driver::ctx::current() else {
        return Ok(false);
    };
    if let Some(op) = &op {
        op.model().note_thread(op.txn, tid);
    }
    gate.point(
        py,
        tid,
        event,
        op.map(|op| Box::new(op) as Box<dyn Op>),
        loc.map_or_else(
            || crate::driver::ctx::caller_loc(py),
            |(file, line, function)| {
                Some(Loc {
                    file,
                    line,
                    function,
                })
            },
        ),
        None,
    )?;
    Ok(true)
}
