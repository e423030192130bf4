//! The C-level opcode tracer: sees each thread's accesses to shared Python
//! state and hands them, as engine events, to the thread's sink
//! ([`crate::hooks`]).
//!
//! # API for the driver
//!
//! - [`install`]`(py)` / [`uninstall`]`(py)`: start/stop tracing the *current
//!   thread* (`PyEval_SetTrace` is per thread). Frames entered after
//!   `install` are traced; events are only produced while the thread has a
//!   sink (`hooks::set_sink`).
//! - [`registry`]: `begin_execution(py)`, `add_root(py, &state) -> ObjId`,
//!   `id_of(py, &obj) -> ObjId` (register on demand: locks, primitives),
//!   `end_execution(py)`. Only registered (shared) objects produce events;
//!   ids are stable across executions (see the module docs).
//! - [`describe_access`]`(&Access) -> String`: `read Counter.value`,
//!   `write dict['k']`, `write list[*]`.
//! - [`site_location`]`(py, event.site) -> Option<SiteLocation>`: file, line,
//!   function of an event the tracer produced.
//!
//! Each event holds exactly one access and is emitted *before* the opcode
//! executes; if the sink returns `Err`, that exception is raised in the
//! user's code at that point, before the access happens.
//!
//! # What is an access
//!
//! Attribute load/store/delete, subscript load/store/delete (and 3.12+
//! slices), globals (builtins, and globals bound to functions, classes or
//! modules, are not scheduling points: rebinding code concurrently is not
//! modelled), closure cells that
//! are free variables or already shared, method loads on list/dict/set/
//! deque/bytearray (mutators write `Key::Any`, everything else reads it),
//! `iter()` of a shared container and `in` tests. Only accesses whose owner is
//! shared (see [`registry`]) are emitted.
//!
//! # Per version
//!
//! Everything that differs per version is in [`interp`]: frame layouts
//! (checked at build time and against the public API at `install`), opcode
//! argument and call layouts. The live stack depth is read from the frame on
//! 3.10/3.11 and precomputed per code object on 3.12/3.13 (where the frame
//! does not record it). Code from the stdlib, `<frozen …>` and frontrun's own
//! package is not traced; site-packages is.

pub mod callee;
pub mod code;
pub mod decode;
pub mod describe;
pub mod interp;
pub mod key_text;
pub mod keys;
pub mod library;
pub mod opaque;
pub mod ops;
pub mod registry;
pub mod share;
pub mod testing;
mod trace;
pub mod user_frame;
pub mod wait_state;

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;

pub use describe::{describe_access, site_location, SiteLocation};
pub use interp::SWITCHES_IN_CALLBACK;
pub use trace::{restore_thread, save_thread, SavedThread};
pub use user_frame::{user_loc, user_loc_from};

/// Whether this build can trace (CPython 3.10–3.13 with the GIL).
pub fn supported() -> bool {
    interp::SUPPORTED
}

static OPCODE_EVENTS: AtomicBool = AtomicBool::new(false);
static LAYOUT_CHECKED: AtomicBool = AtomicBool::new(false);
static GETTRACE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static GETPROFILE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// `sys.<name>`, looked up once: importing `sys` by name on every execution
/// goes through the import machinery.
fn sys_fn<'py>(
    py: Python<'py>,
    cell: &'static GILOnceCell<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("sys")?.getattr(name)?.unbind())
    })
    .map(|f| f.bind(py))
}

/// The profile function set with `sys.setprofile` on this thread, if any.
pub fn python_profiler(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    sys_fn(py, &GETPROFILE, "getprofile")?.call0()
}

/// Start tracing the current thread.
pub fn install(py: Python<'_>) -> PyResult<()> {
    if !interp::SUPPORTED {
        let v = py.version();
        return Err(PyRuntimeError::new_err(format!(
            "frontrun's tracer supports CPython 3.10-3.13 with the GIL; this is {v}. \
             Use one of those interpreters (free-threaded builds are not supported yet)."
        )));
    }
    // The layout is the interpreter's: once it checked out, it stays so (the
    // check sets frame attributes, too dear to repeat per execution).
    if !LAYOUT_CHECKED.load(Ordering::Relaxed) {
        interp::self_check().map_err(|e| {
            PyRuntimeError::new_err(format!(
                "frontrun's tracer cannot run here: {e}; rebuild frontrun for this interpreter"
            ))
        })?;
        // SAFETY: GIL held; a NULL frame means nothing was checked.
        if !unsafe { ffi::PyEval_GetFrame() }.is_null() {
            LAYOUT_CHECKED.store(true, Ordering::Relaxed);
        }
    }
    code::statics(py)?;
    share::init(py)?;
    if !OPCODE_EVENTS.swap(true, Ordering::Relaxed) {
        // 3.12 turns opcode events on for `PyEval_SetTrace` only once some
        // frame has had `f_trace_opcodes` set; doing it once is harmless on
        // the other versions.
        py.run(
            c"import sys\n_f = sys._getframe()\n_f.f_trace_opcodes = True\n_f.f_trace_opcodes = False\n",
            None,
            None,
        )?;
    }
    trace::reset_thread();
    // A Python-level tracer (debugger, coverage) is put back by `uninstall`.
    let previous = sys_fn(py, &GETTRACE, "gettrace")?.call0()?;
    PREVIOUS.with(|p| *p.borrow_mut() = (!previous.is_none()).then(|| previous.unbind()));
    // SAFETY: GIL held; `trace::trace` matches `Py_tracefunc` and needs no
    // argument object.
    unsafe { ffi::PyEval_SetTrace(Some(trace::trace), std::ptr::null_mut()) };
    Ok(())
}

thread_local! {
    static PREVIOUS: std::cell::RefCell<Option<Py<PyAny>>> = const { std::cell::RefCell::new(None) };
}

/// Stop tracing the current thread (restoring a Python-level tracer that
/// was active at `install`).
pub fn uninstall(py: Python<'_>) {
    // SAFETY: GIL held (the token proves it); NULL removes the trace function.
    unsafe { ffi::PyEval_SetTrace(None, std::ptr::null_mut()) };
    trace::reset_thread();
    if let Some(previous) = PREVIOUS.with(|p| p.borrow_mut().take()) {
        let restored = py
            .import("sys")
            .and_then(|sys| sys.call_method1("settrace", (previous,)));
        if let Err(e) = restored {
            e.write_unraisable(py, None);
        }
    }
}
