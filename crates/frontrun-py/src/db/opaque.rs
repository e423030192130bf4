//! Running driver code as one opaque step.
//!
//! Once a statement's scheduling point has been passed, the driver call that
//! runs it must not contain further scheduling points: psycopg 3 is Python
//! (its code would be traced) and takes `threading` locks (cooperative ones
//! while exploring). Either would let another thread run between the point
//! and the statement, breaking the lock model's view of who runs what.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::driver::ctx;
use crate::hooks;

/// Call `f(*args, **kwargs)` with no event sink and real primitives on
/// this thread; restore both afterwards (also on error).
#[pyfunction]
#[pyo3(signature = (f, *args, **kwargs))]
pub fn _db_call<'py>(
    f: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    crate::ffi_guard::guard(|| {
        let saved = hooks::set_sink(None);
        let r = ctx::bypass(|| f.call(args, kwargs));
        hooks::set_sink(saved);
        r
    })
}
