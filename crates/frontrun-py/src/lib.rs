//! `frontrun._native`: translation between Python and the Rust engine.

use pyo3::prelude::*;

pub mod hooks;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
