//! Database statements under the exploration driver: a statement whose row
//! locks are held by another (paused) transaction is a *disabled* pending
//! event, so the scheduler runs other threads, and a lock-wait cycle is a
//! deadlock the gate reports with its wait-for cycle.

use frontrun_engine::coop::CoopOp;
use frontrun_engine::event::Event;
pub use frontrun_sql::model::LockWaitOp;
use pyo3::prelude::*;

use crate::driver::gate::Loc;

/// A source position from Python: `(file, line, function)`.
pub type PyLoc = (String, u32, String);

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
        op.map(|op| Box::new(op) as Box<dyn CoopOp>),
        loc.map_or_else(
            || crate::driver::ctx::caller_loc(py),
            |(file, line, function)| {
                Some(Loc {
                    file,
                    line,
                    function,
                    via: None,
                })
            },
        ),
        None,
    )?;
    Ok(true)
}
