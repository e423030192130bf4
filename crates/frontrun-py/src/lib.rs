//! `frontrun._native`: translation between Python and the Rust engine.

use pyo3::prelude::*;

pub mod hooks;
pub mod tracer;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    tracer::testing::register(m)?;
    Ok(())
}
