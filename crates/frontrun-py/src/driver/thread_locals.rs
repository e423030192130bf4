//! Where the interpreter keeps one thread's `threading.local` values, so
//! that a job (on a reused worker, or a greenlet sharing the exploring
//! thread) can be given values of its own and the owner's put back after:
//! - the thread state's `dict` (`PyThreadState_GetDict`), which
//!   `_thread._local` uses up to 3.12 and `Py_ReprEnter` on every version;
//! - from 3.13, its `threading_local_key` and `threading_local_sentinel`:
//!   `_thread._local` finds a thread's values under the key, and the
//!   sentinel's death (when a thread state is cleared) drops them.
//!
//! Each field is NULL until first used, and then created afresh, which is
//! what a new thread sees. The fields' offsets are not public: each is found
//! once, by looking in this thread's state for a pointer known to be there.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// Word offsets of the fields in `PyThreadState`, in a fixed order.
type Offsets = Vec<usize>;

/// At most this many fields.
const MAX_FIELDS: usize = 3;

/// One thread's values: owned references (or NULL), one per field, in a
/// fixed array (taken and put back on every greenlet switch: no allocation).
pub struct Values([*mut ffi::PyObject; MAX_FIELDS]);

impl Values {
    pub fn none() -> Values {
        Values([std::ptr::null_mut(); MAX_FIELDS])
    }
}

fn tstate() -> *mut *mut ffi::PyObject {
    // SAFETY: callers hold the GIL, so this thread has a thread state.
    unsafe { ffi::PyThreadState_Get() }.cast()
}

/// The word of `tstate` holding `ptr`, searched from word 3 to `limit`
/// (the fields lie well inside the struct on every supported version).
fn find(tstate: *mut *mut ffi::PyObject, limit: usize, ptr: *mut ffi::PyObject) -> Option<usize> {
    (3..limit).find(|&i| {
        // SAFETY: reads within the thread state struct (see `limit`).
        unsafe { *tstate.add(i) == ptr }
    })
}

/// The key and sentinel objects of this thread, created by making a
/// `_thread._local`: its `localdicts` holds one entry under the key and its
/// `thread_watchdogs` one weak reference to the sentinel.
#[cfg(Py_3_13)]
fn key_and_sentinel(py: Python<'_>) -> Option<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    use pyo3::types::{PyDict, PySet};
    let local = py
        .import("_thread")
        .ok()?
        .getattr("_local")
        .ok()?
        .call0()
        .ok()?;
    let refs = py
        .import("gc")
        .ok()?
        .call_method1("get_referents", (&local,))
        .ok()?;
    let (mut key, mut sentinel) = (None, None);
    for r in refs.try_iter().ok()? {
        let r = r.ok()?;
        if let Ok(d) = r.downcast::<PyDict>() {
            if d.len() == 1 {
                key = d.keys().get_item(0).ok();
            }
        } else if let Ok(s) = r.downcast::<PySet>() {
            if s.len() == 1 {
                sentinel = s.iter().next().and_then(|w| w.call0().ok());
            }
        }
    }
    Some((key?, sentinel?))
}

fn offsets(py: Python<'_>) -> &'static Option<Offsets> {
    static OFFSETS: OnceLock<Option<Offsets>> = OnceLock::new();
    OFFSETS.get_or_init(|| {
        let ts = tstate();
        // SAFETY: GIL held; returns a borrowed dict, created if missing.
        let dict = unsafe { ffi::PyThreadState_GetDict() };
        if dict.is_null() {
            return None;
        }
        let found = vec![find(ts, 40, dict)?];
        #[cfg(Py_3_13)]
        let found = {
            let mut found = found;
            let (key, sentinel) = key_and_sentinel(py)?;
            // The two fields are adjacent, near the end of a struct of
            // about 45 words.
            let k = find(ts, 80, key.as_ptr())?;
            // SAFETY: within the struct, next to a field found in it.
            if unsafe { *ts.add(k + 1) } != sentinel.as_ptr() {
                return None;
            }
            found.extend([k, k + 1]);
            found
        };
        let _ = py;
        Some(found)
    })
}

/// Whether this interpreter's thread-local fields were all found: if not,
/// jobs share their thread's `threading.local` values.
pub fn available(py: Python<'_>) -> bool {
    offsets(py).is_some()
}

/// Take this thread's values out, leaving the fields NULL (the next use
/// creates new ones, as on a new thread).
pub fn take(py: Python<'_>) -> Values {
    let Some(offsets) = offsets(py) else {
        return Values::none();
    };
    let ts = tstate();
    let mut out = Values::none();
    for (slot, &i) in out.0.iter_mut().zip(offsets) {
        // SAFETY: GIL held; each offset is a field of this struct type,
        // owning its reference (or NULL), which moves out.
        *slot = unsafe { std::mem::replace(&mut *ts.add(i), std::ptr::null_mut()) };
    }
    out
}

/// Put `values` (taken by [`take`]) back, releasing the values created
/// meanwhile: dropping a job's sentinel drops its `threading.local` values,
/// as at a thread's exit.
pub fn put(py: Python<'_>, values: Values) {
    let Some(offsets) = offsets(py) else {
        return;
    };
    let ts = tstate();
    let mut stray = [std::ptr::null_mut(); MAX_FIELDS];
    for ((old, &i), v) in stray.iter_mut().zip(offsets).zip(values.0) {
        // SAFETY: as in `take`; the reference moves back into the field.
        *old = unsafe { std::mem::replace(&mut *ts.add(i), v) };
    }
    // Released once every field is back: finalizers may use them.
    for p in stray {
        // SAFETY: GIL held; each is an owned reference or NULL.
        unsafe { ffi::Py_XDECREF(p) };
    }
}
