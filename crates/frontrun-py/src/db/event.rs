//! A database statement as a scheduling point of the current thread.

use frontrun_engine::event::Event;
use pyo3::prelude::*;

use super::footprint::PyFootprint;
use super::model::PyDbModel;

/// Emit the event of `fp`, about to be run by transaction `txn`, to the
/// current thread's sink (which may park the thread). A no-op on threads
/// that are not being explored. Returns whether a sink received it.
#[pyfunction]
#[pyo3(signature = (model, txn, fp, site = 0, serializable = false))]
pub fn db_event(
    py: Python<'_>,
    model: &PyDbModel,
    txn: u64,
    fp: &PyFootprint,
    site: u64,
    serializable: bool,
) -> PyResult<bool> {
    if !crate::hooks::has_sink() {
        return Ok(false);
    }
    let accesses = model.event_accesses(txn, &fp.fp, serializable);
    crate::hooks::emit(py, Event::new(accesses, site))?;
    Ok(true)
}
