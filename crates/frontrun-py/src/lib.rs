//! `frontrun._native`: translation between Python and the Rust engine.

use pyo3::prelude::*;

pub mod db;
pub mod hooks;
pub mod line_tracer;
pub mod marker_files;
pub mod marker_gate;
pub mod py_trace_markers;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    py_trace_markers::register(m)?;
    db::register(m)?;
    Ok(())
}
