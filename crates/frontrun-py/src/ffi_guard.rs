//! No Rust panic crosses into Python as PyO3's `PanicException` (a
//! `BaseException` that test code does not expect and `except Exception`
//! does not catch): entries run under [`guard`], which turns a panic into
//! the `RuntimeError` of [`crate::line_tracer::internal_error`].
//!
//! The two `_panic_*` functions exist for the reliability tests: they
//! provoke a panic at an entry and in the line tracer, to show a normal
//! exception comes out and the interpreter does not abort.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// Run `f`, turning a panic into a normal Python exception.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(crate::line_tracer::internal_error(&panic)))
}

/// Set by [`_panic_on_next_traced_line`]; the line tracer panics once at
/// the next line event of a traced thread when it is set.
static PANIC_ON_NEXT_LINE: AtomicBool = AtomicBool::new(false);

/// Whether the line tracer must panic now (test hook; clears the request).
/// One relaxed load per line event when not set.
pub fn take_line_panic_request() -> bool {
    PANIC_ON_NEXT_LINE.load(Ordering::Relaxed) && PANIC_ON_NEXT_LINE.swap(false, Ordering::Relaxed)
}

/// Test hook: the next line event of a traced thread panics inside the line
/// tracer.
#[pyfunction]
pub fn _panic_on_next_traced_line(on: bool) {
    PANIC_ON_NEXT_LINE.store(on, Ordering::Relaxed);
}

/// Test hook: an entry whose body panics.
#[pyfunction]
pub fn _panic_in_entry() -> PyResult<()> {
    guard(|| panic!("test-only panic at an FFI entry"))
}

/// Register the test hooks.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_on_next_traced_line, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_entry, m)?)?;
    Ok(())
}
