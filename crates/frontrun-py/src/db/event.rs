//! A database statement as a scheduling point of the current thread.

use frontrun_engine::event::Event;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::footprint::PyFootprint;
use super::model::PyDbModel;
use super::wait::{self, LockWaitOp, PyLoc};

/// Emit the event of `fp`, about to be run by transaction `txn`, as a
/// scheduling point of the current thread (which may park it). On an
/// explored thread, with `lock_model`, the statement is not scheduled while
/// the lock model predicts it would wait for another transaction's row lock.
/// Elsewhere the event goes to the thread's sink, if any. Returns whether
/// anything received it.
#[pyfunction]
#[pyo3(signature = (model, txn, fp, site = 0, serializable = false, lock_model = true, loc = None))]
#[allow(clippy::too_many_arguments)]
pub fn db_event(
    py: Python<'_>,
    model: &PyDbModel,
    txn: u64,
    fp: &PyFootprint,
    site: u64,
    serializable: bool,
    lock_model: bool,
    loc: Option<PyLoc>,
) -> PyResult<bool> {
    if lock_model && crate::driver::ctx::current().is_some() {
        let event = Event::new(model.event_accesses(txn, &fp.fp, serializable), site);
        let op = LockWaitOp {
            model: model.shared(),
            txn,
            fp: fp.fp.clone(),
            min_epoch: 0,
        };
        return wait::point(py, event, op, loc);
    }
    if !crate::hooks::has_sink() {
        return Ok(false);
    }
    let accesses = model.event_accesses(txn, &fp.fp, serializable);
    crate::hooks::emit(py, Event::new(accesses, site))?;
    Ok(true)
}

/// After a probe found `fp` waiting for a lock: a scheduling point that is
/// enabled again once some transaction ended (`model.epoch >= min_epoch`).
#[pyfunction]
#[pyo3(signature = (model, txn, fp, site, min_epoch, serializable = false, loc = None))]
#[allow(clippy::too_many_arguments)]
pub fn db_wait(
    py: Python<'_>,
    model: &PyDbModel,
    txn: u64,
    fp: &PyFootprint,
    site: u64,
    min_epoch: u64,
    serializable: bool,
    loc: Option<PyLoc>,
) -> PyResult<()> {
    let event = Event::new(model.event_accesses(txn, &fp.fp, serializable), site);
    let op = LockWaitOp {
        model: model.shared(),
        txn,
        fp: fp.fp.clone(),
        min_epoch,
    };
    if wait::point(py, event, op, loc)? {
        Ok(())
    } else {
        Err(PyRuntimeError::new_err(
            "db_wait called outside an explored thread: nothing can release the lock",
        ))
    }
}
