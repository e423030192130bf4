//! A fresh thread identity for each explored thread of each execution.
//!
//! Workers are reused across executions (see `pool`), but a program must not
//! be able to tell: an explored thread starts with
//! - no `threading.local` values (see `thread_locals`): the worker's own
//!   are set aside for the job and the job's are dropped at its end, as when
//!   a thread exits (so per-thread values are released);
//! - a new, empty `contextvars` context, as a new `threading.Thread` has;
//! - its own `get_ident()`/`get_native_id()` values (patched in by `_coop`
//!   for the length of an exploration), derived from its explored-thread
//!   index only, so the same program sees the same values in every
//!   execution; the ident is odd, so it never equals a real `pthread_t`;
//! - a `threading.current_thread()` that is its own `Thread` object (for a
//!   thread started by an explored thread) or a stand-in named after the
//!   explored thread, registered in `threading._active` on first use.
//!
//! Everything here is per job and costs a few pointer swaps; the only
//! Python-object work (the stand-in thread) happens only if the program asks.

use std::cell::RefCell;
use std::os::raw::c_ulong;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyType};

use frontrun_engine::event::ThreadId;

use super::thread_locals;

/// Odd, so never a real `pthread_t` (an aligned address); far from 0 so it
/// looks like one.
const IDENT_BASE: u64 = 0x7E57_0000_0001;
/// Above Linux's `pid_max` limit (2^22), so never a real native thread id.
const NATIVE_BASE: u64 = 1 << 30;

extern "C" {
    fn PyThread_get_thread_ident() -> c_ulong;
    fn PyThread_get_thread_native_id() -> c_ulong;
}

/// The `threading.get_ident()` value of explored thread `tid`.
pub fn virtual_ident(tid: ThreadId) -> u64 {
    IDENT_BASE + 2 * tid as u64
}

/// The `threading.get_native_id()` value of explored thread `tid`.
pub fn virtual_native_id(tid: ThreadId) -> u64 {
    NATIVE_BASE + tid as u64
}

/// The identity state of the job running on this thread.
struct IdentityJob {
    tid: ThreadId,
    name: String,
    /// The `threading.Thread` the program started, for spawned threads.
    thread: Option<Py<PyAny>>,
    /// What `current_thread()` returns, once registered in `_active`.
    registered: Option<Py<PyAny>>,
    /// The worker's own `threading.local` values, set aside during the job.
    saved_locals: thread_locals::Values,
    /// The job's context (a strong reference), entered at `enter`.
    context: *mut ffi::PyObject,
}

thread_local! {
    static JOB: RefCell<Option<IdentityJob>> = const { RefCell::new(None) };
}

fn active(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static ACTIVE: GILOnceCell<Py<PyDict>> = GILOnceCell::new();
    ACTIVE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("threading")?
                    .getattr("_active")?
                    .downcast_into::<PyDict>()?
                    .unbind(),
            )
        })
        .map(|d| d.bind(py))
}

fn stand_in_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    TYPE.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("frontrun._coop")?
                .getattr("ExploredThread")?
                .downcast_into::<PyType>()?
                .unbind(),
        )
    })
    .map(|t| t.bind(py))
}

/// Give this worker thread the identity of a new thread for explored thread
/// `tid` (started by the program as `thread`, if it was).
pub fn enter(py: Python<'_>, tid: ThreadId, name: String, thread: Option<Py<PyAny>>) {
    let saved_locals = thread_locals::take(py);
    // SAFETY: GIL held. A new context is not entered anywhere, so entering
    // it cannot fail; on failure (out of memory) the job keeps the worker's.
    let context = unsafe {
        let c = ffi::PyContext_New();
        if !c.is_null() && ffi::PyContext_Enter(c) != 0 {
            ffi::PyErr_Clear();
            ffi::Py_DECREF(c);
            std::ptr::null_mut()
        } else {
            c
        }
    };
    JOB.with(|j| {
        *j.borrow_mut() = Some(IdentityJob {
            tid,
            name,
            thread,
            registered: None,
            saved_locals,
            context,
        })
    });
}

/// Undo `enter`: the job's thread-local values and context are dropped (which
/// may run finalizers, as at a thread's exit) and the worker's come back.
pub fn exit(py: Python<'_>) {
    let Some(job) = JOB.with(|j| j.borrow_mut().take()) else {
        return;
    };
    if let Some(obj) = &job.registered {
        if let Ok(active) = active(py) {
            let ident = virtual_ident(job.tid);
            // Only our own entry: a stuck job of an earlier execution may
            // share the index.
            if active
                .get_item(ident)
                .ok()
                .flatten()
                .is_some_and(|o| o.is(obj))
            {
                let _ = active.del_item(ident);
            }
        }
    }
    if !job.context.is_null() {
        // SAFETY: GIL held; `context` is the one entered by `enter`, and
        // code run by the job restores any context it entered itself.
        unsafe {
            if ffi::PyContext_Exit(job.context) != 0 {
                ffi::PyErr_Clear();
            }
            ffi::Py_DECREF(job.context);
        }
    }
    thread_locals::put(py, job.saved_locals);
}

/// One greenlet's identity (its job and its `threading.local` values), set
/// aside while another greenlet runs on the same OS thread.
pub struct Saved {
    job: Option<IdentityJob>,
    locals: thread_locals::Values,
}

/// Take the calling greenlet's identity out, leaving none (and no
/// thread-state dict: the next `PyThreadState_GetDict` would create one).
pub fn save(py: Python<'_>) -> Saved {
    let job = JOB.with(|j| j.borrow_mut().take());
    let locals = thread_locals::take(py);
    Saved { job, locals }
}

/// Put back an identity taken by `save`.
pub fn restore(py: Python<'_>, saved: Saved) {
    JOB.with(|j| *j.borrow_mut() = saved.job);
    thread_locals::put(py, saved.locals);
}

/// The explored thread the current worker runs, if any.
fn current_tid() -> Option<ThreadId> {
    super::ctx::current()?;
    JOB.with(|j| j.borrow().as_ref().map(|job| job.tid))
}

/// Register what `current_thread()` should return for this job.
fn register(py: Python<'_>) -> PyResult<()> {
    let pending = JOB.with(|j| {
        let j = j.borrow();
        let job = j.as_ref()?;
        if job.registered.is_some() {
            return None;
        }
        Some((
            job.tid,
            job.name.clone(),
            job.thread.as_ref().map(|t| t.clone_ref(py)),
        ))
    });
    let Some((tid, name, thread)) = pending else {
        return Ok(());
    };
    let obj = match thread {
        Some(t) => t,
        None => {
            let cls = stand_in_type(py)?;
            let obj = cls.call_method1("__new__", (cls,))?;
            obj.setattr("_name", name)?;
            obj.setattr("_ident", virtual_ident(tid))?;
            obj.setattr("_native_id", virtual_native_id(tid))?;
            obj.setattr("_frontrun_tid", tid)?;
            obj.unbind()
        }
    };
    active(py)?.set_item(virtual_ident(tid), obj.bind(py))?;
    JOB.with(|j| {
        if let Some(job) = j.borrow_mut().as_mut() {
            job.registered = Some(obj);
        }
    });
    Ok(())
}

/// `threading.get_ident` during an exploration.
#[pyfunction]
// `c_ulong` is `u64` here, but 32 bits on Windows.
#[allow(clippy::useless_conversion)]
pub fn _coop_get_ident(py: Python<'_>) -> PyResult<u64> {
    crate::ffi_guard::guard(|| {
        match current_tid() {
            Some(tid) => {
                // `current_thread()` looks its result up by this value.
                register(py)?;
                Ok(virtual_ident(tid))
            }
            // SAFETY: plain C call with no preconditions.
            None => Ok(u64::from(unsafe { PyThread_get_thread_ident() })),
        }
    })
}

/// `threading.get_native_id` during an exploration.
#[pyfunction]
#[allow(clippy::useless_conversion)]
pub fn _coop_get_native_id() -> PyResult<u64> {
    crate::ffi_guard::guard(|| {
        Ok({
            match current_tid() {
                Some(tid) => virtual_native_id(tid),
                // SAFETY: plain C call with no preconditions.
                None => u64::from(unsafe { PyThread_get_thread_native_id() }),
            }
        })
    })
}

/// `(get_ident(), get_native_id())` of explored thread `tid`, for the
/// `Thread` objects the program starts.
#[pyfunction]
pub fn _coop_thread_ids(tid: ThreadId) -> PyResult<(u64, u64)> {
    crate::ffi_guard::guard(|| Ok((virtual_ident(tid), virtual_native_id(tid))))
}
