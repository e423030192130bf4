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
///
/// A statement that takes row locks is two points on an explored thread:
/// its reads (snapshot and scan, never waiting), then its lock acquisitions
/// (which wait while another transaction holds the rows). See
/// [`frontrun_sql::accesses`] for why. When that statement takes its transaction's
/// snapshot, `take_snapshot` is called between the two points: the server
/// takes the snapshot when the statement starts, before any lock wait, so
/// the driver makes it happen there (and a commit the statement then waits
/// for is not in it).
#[pyfunction]
#[pyo3(signature = (model, txn, fp, site = 0, serializable = false, lock_model = true, loc = None, snapshot_isolation = false, take_snapshot = None))]
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
    snapshot_isolation: bool,
    take_snapshot: Option<Py<PyAny>>,
) -> PyResult<bool> {
    crate::ffi_guard::guard(|| {
        // (Computed only for a receiver: it marks the locks as taken.)
        let parts = || model.event_parts(txn, &fp.fp, serializable, snapshot_isolation);
        if lock_model && crate::driver::ctx::current().is_some() {
            let parts = parts();
            let op = LockWaitOp {
                model: model.shared(),
                txn,
                fp: fp.fp.clone(),
                min_epoch: 0,
            };
            if parts.locks.is_empty() {
                return wait::point(py, Event::new(parts.reads, site), Some(op), loc);
            }
            wait::point(py, Event::new(parts.reads, site), None, loc.clone())?;
            if let Some(take) = take_snapshot.filter(|_| parts.snapshot) {
                take.call0(py)?;
            }
            return wait::point(py, Event::new(parts.locks, site), Some(op), loc);
        }
        if !crate::hooks::has_sink() {
            return Ok(false);
        }
        crate::hooks::emit(py, Event::new(parts().joined(), site))?;
        Ok(true)
    })
}

/// After a probe found `fp` waiting for a lock: a scheduling point that is
/// enabled again once some transaction ended (`model.epoch >= min_epoch`).
/// The statement is then run again from its start: one point with all its
/// accesses (locks already taken are not acquired again).
#[pyfunction]
#[pyo3(signature = (model, txn, fp, site, min_epoch, serializable = false, loc = None, snapshot_isolation = false))]
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
    snapshot_isolation: bool,
) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        let parts = model.event_parts(txn, &fp.fp, serializable, snapshot_isolation);
        let event = Event::new(parts.joined(), site);
        let op = LockWaitOp {
            model: model.shared(),
            txn,
            fp: fp.fp.clone(),
            min_epoch,
        };
        if wait::point(py, event, Some(op), loc)? {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "db_wait called outside an explored thread: nothing can release the lock",
            ))
        }
    })
}
