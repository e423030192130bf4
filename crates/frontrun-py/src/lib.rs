//! `frontrun._native`: translation between Python and the Rust engine.

use pyo3::prelude::*;

pub mod block_hook;
pub mod db;
pub mod driver;
pub mod ffi_guard;
pub mod hooks;
pub mod line_tracer;
pub mod marker_errors;
pub mod marker_gate;
pub mod py_trace_markers;
pub mod tracer;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // How many timeouts a thread may choose per execution (tests and docs
    // read it here rather than repeating the number).
    m.add("MAX_TIMEOUTS", frontrun_engine::turns::MAX_TIMEOUTS)?;
    tracer::testing::register(m)?;
    m.add_function(wrap_pyfunction!(tracer::testing::_trace_record, m)?)?;
    m.add_function(wrap_pyfunction!(tracer::user_frame::_set_full_frames, m)?)?;
    m.add_function(wrap_pyfunction!(tracer::testing::_trace_count, m)?)?;
    m.add_function(wrap_pyfunction!(tracer::testing::_trace_describe, m)?)?;
    m.add_function(wrap_pyfunction!(tracer::testing::_trace_events, m)?)?;
    m.add_function(wrap_pyfunction!(tracer::testing::_tracer_supported, m)?)?;
    py_trace_markers::register(m)?;
    ffi_guard::register(m)?;
    driver::register(m)?;
    db::register(m)?;
    Ok(())
}
