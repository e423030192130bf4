//! Where `setup()` took real `threading` locks.
//!
//! A lock created outside `setup()` is a real `_thread.lock`/`RLock`, which
//! frontrun does not schedule. When `setup()` takes one and does not give it
//! back, an explored thread that asks for it waits past `timeout_per_run`;
//! the stall report then names where `setup()` acquired it. A plain lock
//! does not record its holder, so the acquisition is watched as it happens:
//! a C-level profile hook, on the exploring thread, for the length of
//! `setup()` only.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::{Mutex, PoisonError};

use pyo3::ffi;
use pyo3::prelude::*;

/// `(lock address, file:line in function)` of the real locks `setup()` holds.
static SITES: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

/// Run `setup` (the user's `setup()` call) recording the real locks it
/// acquires and does not release. A profiler already installed on this
/// thread (cProfile, a debugger) is left alone: then nothing is recorded.
pub fn recording<T>(py: Python<'_>, setup: impl FnOnce() -> T) -> T {
    SITES.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let free = crate::tracer::python_profiler(py).is_ok_and(|p| p.is_none());
    if !free {
        return setup();
    }
    // SAFETY: the GIL is held; the profile function applies to this thread
    // only and matches `Py_tracefunc`; Py_None is immortal.
    unsafe { ffi::PyEval_SetProfile(Some(profile), ffi::Py_None()) };
    let out = setup();
    // SAFETY: as above; clearing this thread's profile function.
    unsafe { ffi::PyEval_SetProfile(None, std::ptr::null_mut()) };
    out
}

/// Where `setup()` acquired the real lock at `addr`, if it still holds it.
pub fn site_of(addr: usize) -> Option<String> {
    let sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
    sites
        .iter()
        .rev()
        .find(|(a, _)| *a == addr)
        .map(|(_, s)| s.clone())
}

/// # Safety
/// Called by CPython with the GIL held, a valid `frame`, and `arg` the
/// called object for C events.
unsafe extern "C" fn profile(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    if what != ffi::PyTrace_C_CALL || arg.is_null() {
        return 0;
    }
    // A panic must not unwind into CPython; recording is best effort.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the GIL is held; `arg` and `frame` are as CPython passed.
        unsafe { on_c_call(frame, arg) }
    }));
    0
}

/// # Safety
/// As [`profile`].
unsafe fn on_c_call(frame: *mut ffi::PyFrameObject, func: *mut ffi::PyObject) {
    // SAFETY: `func` is a valid object.
    if unsafe { ffi::PyCFunction_Check(func) } == 0 {
        return;
    }
    // SAFETY: `func` is a PyCFunctionObject; its method def and name are
    // static for its lifetime, and `m_self` is its bound object or NULL.
    let (name, this) = unsafe {
        let f = func.cast::<ffi::PyCFunctionObject>();
        (CStr::from_ptr((*(*f).m_ml).ml_name).to_bytes(), (*f).m_self)
    };
    if this.is_null() {
        return;
    }
    // SAFETY: `this` is a valid object, its type's tp_name a C string.
    let ty = unsafe { CStr::from_ptr((*ffi::Py_TYPE(this)).tp_name) }.to_bytes();
    if !matches!(ty, b"_thread.lock" | b"_thread.RLock") {
        return;
    }
    let addr = this as usize;
    let mut sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
    match name {
        b"acquire" | b"__enter__" => {
            // SAFETY: the GIL is held (CPython calls profile functions with it).
            let py = unsafe { Python::assume_gil_acquired() };
            // SAFETY: `frame` is a valid borrowed frame (or NULL).
            let frame = unsafe { Bound::from_borrowed_ptr_or_opt(py, frame.cast()) };
            let at = frame
                .and_then(|f| crate::tracer::user_loc_from(py, f))
                .map_or_else(
                    || "?".to_owned(),
                    |(l, _)| {
                        let file = l.file.rsplit('/').next().unwrap_or(&l.file).to_owned();
                        format!("{file}:{} in {}", l.line, l.function)
                    },
                );
            sites.push((addr, at));
        }
        b"release" | b"__exit__" => {
            if let Some(k) = sites.iter().rposition(|(a, _)| *a == addr) {
                sites.remove(k);
            }
        }
        _ => {}
    }
}
