//! A C-level profile hook that sees a traced thread about to block.
//!
//! Strict turn-taking needs to know when the thread holding the turn cannot
//! go on: then the turn must pass to another thread, or the run would hang.
//! `PyEval_SetProfile` (installed on the executor's threads only) reports
//! every call, which covers two kinds of waits:
//!
//! - `threading` primitives: every blocking wait of `Lock`, `RLock`,
//!   `Condition`, `Event`, `Semaphore`, `Queue` and `Thread.join` ends in
//!   `acquire` (or `__enter__`) of a `_thread.lock`/`_thread.RLock`. The hook
//!   checks whether that acquire would block *before* the call (and skips
//!   `acquire(False)` / `blocking=False` try-locks), passes the turn, and
//!   takes it back when the call returns.
//! - database calls: `execute`/`commit`/... of psycopg2 (C methods) and
//!   psycopg 3 (Python methods) are recorded with their backend pid. Whether
//!   one waits for a row lock is not known locally: the executor's probe asks
//!   the server (`pg_blocking_pids`) and tells the gate, which passes the
//!   turn; the return of the call takes it back.
//!
//! `with lock:` on a bare lock calls `__enter__` without a profile event on
//! CPython 3.11: the line tracer finds such `with` lines and calls
//! [`check_with`] there, and the thread's next event takes the turn back.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::Arc;

use frontrun_engine::marker_schedule::ThreadIdx;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::marker_gate::MarkerGate;

/// What a type is, for the hook.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Lock,
    RLock,
    Psycopg2,
    Other,
}

/// Per-thread state of the hook.
struct HookCtx {
    gate: Arc<MarkerGate>,
    idx: ThreadIdx,
    /// The C function object of a lock call that gave the turn away.
    lock_call: Option<usize>,
    /// The database call in progress: its id and the C function object
    /// (psycopg2) or frame (psycopg 3) whose return ends it.
    db_call: Option<(u64, usize)>,
    /// Type pointer -> kind.
    kinds: HashMap<usize, BlockKind>,
    /// Code pointer -> whether it is a psycopg 3 call to record; the code
    /// object is kept alive so its address is not reused.
    codes: HashMap<usize, (Py<PyAny>, bool)>,
}

thread_local! {
    static HOOK: RefCell<Option<HookCtx>> = const { RefCell::new(None) };
    /// A `with` statement of this thread passed the turn before entering
    /// its lock; the thread's next event takes the turn back.
    static WITH_BLOCKED: Cell<Option<(Arc<MarkerGate>, ThreadIdx)>> = const { Cell::new(None) };
}

/// The line tracer found a `with` line: if its context manager is a lock
/// that would make this thread wait, pass the turn until the next event.
///
/// # Safety
/// The GIL is held and `frame` is valid.
pub unsafe fn check_with(
    py: Python<'_>,
    frame: *mut ffi::PyFrameObject,
    target: &(String, String, Vec<String>),
    gate: &Arc<MarkerGate>,
    idx: ThreadIdx,
) -> PyResult<()> {
    // SAFETY: `frame` is a valid borrowed frame object.
    let frame_obj = unsafe { Bound::from_borrowed_ptr(py, frame.cast::<ffi::PyObject>()) };
    let Some(obj) = with_target(py, &frame_obj, target) else {
        return Ok(());
    };
    let kind = HOOK.with(|h| {
        let mut h = h.borrow_mut();
        let ctx = h.as_mut()?;
        // SAFETY: `obj` is a valid object; its type is a valid type.
        Some(unsafe { kind_of(ctx, ffi::Py_TYPE(obj.as_ptr())) })
    });
    let Some(kind @ (BlockKind::Lock | BlockKind::RLock)) = kind else {
        return Ok(());
    };
    if !would_block(&obj, kind)? {
        return Ok(());
    }
    let what = obj
        .repr()
        .map_or_else(|_| "a lock".to_owned(), |r| r.to_string());
    // SAFETY: `frame` is valid.
    let at = unsafe { location(py, frame) };
    gate.on_block(
        idx,
        format!("with {what}"),
        at,
        None,
        Some(obj.as_ptr() as usize),
    );
    if gate.is_blocked(idx) {
        WITH_BLOCKED.with(|w| w.set(Some((gate.clone(), idx))));
    }
    Ok(())
}

/// Evaluate a `with` line's context manager expression (a name and
/// attributes) in `frame`; `None` if it cannot be found.
fn with_target<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    (scope, name, attrs): &(String, String, Vec<String>),
) -> Option<Bound<'py, PyAny>> {
    let lookup = |what: &str| -> Option<Bound<'py, PyAny>> {
        frame.getattr(what).ok()?.get_item(name.as_str()).ok()
    };
    let builtins =
        || -> Option<Bound<'py, PyAny>> { py.import("builtins").ok()?.getattr(name.as_str()).ok() };
    let mut obj = match scope.as_str() {
        "fast" => lookup("f_locals")?,
        "global" => lookup("f_globals").or_else(builtins)?,
        _ => lookup("f_locals")
            .or_else(|| lookup("f_globals"))
            .or_else(builtins)?,
    };
    for a in attrs {
        obj = obj.getattr(a.as_str()).ok()?;
    }
    Some(obj)
}

/// If a `with` of this thread passed the turn, its lock is now held: wait
/// for the turn back.
pub fn resume_after_with(py: Python<'_>) -> PyResult<()> {
    if let Some((gate, idx)) = WITH_BLOCKED.with(Cell::take) {
        gate.on_unblock(py, idx)
            .map_err(crate::marker_errors::stop_error)?;
    }
    Ok(())
}

/// Start watching the current thread's calls on behalf of thread `idx`.
pub fn install(_py: Python<'_>, gate: Arc<MarkerGate>, idx: ThreadIdx) {
    HOOK.with(|h| {
        *h.borrow_mut() = Some(HookCtx {
            gate,
            idx,
            lock_call: None,
            db_call: None,
            kinds: HashMap::new(),
            codes: HashMap::new(),
        });
    });
    // SAFETY: the GIL is held; PyEval_SetProfile affects only the calling
    // thread, and `profile` matches `Py_tracefunc`. Py_None is immortal.
    unsafe { ffi::PyEval_SetProfile(Some(profile), ffi::Py_None()) };
}

/// Stop watching the current thread.
pub fn uninstall(_py: Python<'_>) {
    // SAFETY: the GIL is held; clearing the calling thread's profile
    // function is always allowed.
    unsafe { ffi::PyEval_SetProfile(None, std::ptr::null_mut()) };
    let ctx = HOOK.with(|h| h.borrow_mut().take());
    drop(ctx);
}

/// The profile function.
///
/// # Safety
/// Called by CPython with the GIL held, a valid borrowed `frame`, and `arg`
/// the called C function for C events.
unsafe extern "C" fn profile(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    arg: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: CPython calls profile functions only with the GIL held.
    let py = unsafe { Python::assume_gil_acquired() };
    // A panic must not unwind into CPython's C frames: it becomes an
    // exception in the traced thread.
    // SAFETY: the arguments are as CPython passed them.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        resume_after_with(py)?;
        match what {
            ffi::PyTrace_C_CALL => on_c_call(py, frame, arg),
            ffi::PyTrace_C_RETURN | ffi::PyTrace_C_EXCEPTION => on_return(py, arg as usize),
            ffi::PyTrace_CALL => on_py_call(py, frame),
            ffi::PyTrace_RETURN => on_return(py, frame as usize),
            _ => Ok(()),
        }
    }));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(err)) => {
            err.restore(py);
            -1
        }
        Err(panic) => {
            crate::ffi_guard::internal_error(&panic).restore(py);
            -1
        }
    }
}

/// Where the call at `frame` is: `file:line (function)` of the innermost
/// frames down to the first one outside the standard library.
///
/// # Safety
/// The GIL is held and `frame` is valid or null.
unsafe fn location(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> String {
    if frame.is_null() {
        return "?".to_owned();
    }
    // SAFETY: `frame` is a valid borrowed frame object.
    let frame = unsafe { Bound::from_borrowed_ptr(py, frame.cast::<ffi::PyObject>()) };
    crate::marker_errors::stack_summary(py, &frame)
}

/// Classify a type by its name and its bases' names (cached per type).
///
/// # Safety
/// The GIL is held and `ty` is a valid type object.
unsafe fn kind_of(ctx: &mut HookCtx, ty: *mut ffi::PyTypeObject) -> BlockKind {
    if let Some(k) = ctx.kinds.get(&(ty as usize)) {
        return *k;
    }
    let mut kind = BlockKind::Other;
    let mut t = ty;
    while !t.is_null() {
        // SAFETY: `t` is a live type object (a base of a live type); its
        // tp_name is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr((*t).tp_name) }.to_bytes();
        kind = match name {
            b"_thread.lock" => BlockKind::Lock,
            b"_thread.RLock" => BlockKind::RLock,
            b"psycopg2.extensions.cursor" | b"psycopg2.extensions.connection" => {
                BlockKind::Psycopg2
            }
            _ => BlockKind::Other,
        };
        if kind != BlockKind::Other {
            break;
        }
        // SAFETY: as above.
        t = unsafe { (*t).tp_base };
    }
    ctx.kinds.insert(ty as usize, kind);
    kind
}

/// A C function is about to be called from `frame`.
///
/// # Safety
/// The GIL is held, `frame` is valid and `func` is the called object.
unsafe fn on_c_call(
    py: Python<'_>,
    frame: *mut ffi::PyFrameObject,
    func: *mut ffi::PyObject,
) -> PyResult<()> {
    // SAFETY: `func` is a valid object.
    if func.is_null() || unsafe { ffi::PyCFunction_Check(func) } == 0 {
        return Ok(());
    }
    // SAFETY: `func` is a PyCFunctionObject (checked above); `m_ml` and its
    // name are static for the function's lifetime.
    let (name, this) = unsafe {
        let f = func.cast::<ffi::PyCFunctionObject>();
        (CStr::from_ptr((*(*f).m_ml).ml_name).to_bytes(), (*f).m_self)
    };
    let is_lock_call = matches!(name, b"acquire" | b"__enter__");
    let is_release = matches!(name, b"release" | b"__exit__");
    let is_db_call = matches!(
        name,
        b"execute" | b"executemany" | b"callproc" | b"commit" | b"rollback"
    );
    if this.is_null() || !(is_lock_call || is_db_call || is_release) {
        return Ok(());
    }
    let Some((gate, idx, kind)) = HOOK.with(|h| {
        let mut h = h.borrow_mut();
        let ctx = h.as_mut()?;
        // SAFETY: `this` is a valid object; its type is a valid type.
        let kind = unsafe { kind_of(ctx, ffi::Py_TYPE(this)) };
        Some((ctx.gate.clone(), ctx.idx, kind))
    }) else {
        return Ok(());
    };
    // SAFETY: `this` is a valid borrowed object.
    let obj = unsafe { Bound::from_borrowed_ptr(py, this) };
    match kind {
        // Releasing a plain lock, or the last level of an RLock, lets its
        // first waiter return.
        BlockKind::Lock | BlockKind::RLock if is_release => {
            if kind == BlockKind::Lock || releases_fully(&obj)? {
                gate.on_release(idx, this as usize);
            }
            Ok(())
        }
        BlockKind::Lock | BlockKind::RLock if is_lock_call => {
            // A nested acquire of an RLock this thread owns takes nothing
            // from anyone.
            if kind == BlockKind::RLock && owns(&obj)? {
                return Ok(());
            }
            if !would_block(&obj, kind)? {
                gate.on_taken(this as usize);
                return Ok(());
            }
            // SAFETY: `frame` is valid.
            let wait = unsafe { acquire_wait(py, frame)? };
            if wait == Some(0.0) {
                return Ok(()); // a try-lock never waits
            }
            let what = obj
                .repr()
                .map_or_else(|_| "a lock".to_owned(), |r| r.to_string());
            // SAFETY: `frame` is valid.
            let at = unsafe { location(py, frame) };
            gate.on_block(
                idx,
                format!("{what}.{}()", String::from_utf8_lossy(name)),
                at,
                wait,
                Some(this as usize),
            );
            if gate.is_blocked(idx) {
                HOOK.with(|h| {
                    if let Some(ctx) = h.borrow_mut().as_mut() {
                        ctx.lock_call = Some(func as usize);
                    }
                });
            }
            Ok(())
        }
        BlockKind::Psycopg2 if is_db_call => {
            let conn = obj
                .getattr(pyo3::intern!(py, "connection"))
                .unwrap_or_else(|_| obj.clone());
            let Ok(pid) = conn
                .call_method0(pyo3::intern!(py, "get_backend_pid"))
                .and_then(|p| p.extract::<i64>())
            else {
                return Ok(());
            };
            // SAFETY: `frame` is valid.
            let at = unsafe { location(py, frame) };
            let what = format!("psycopg2 {}()", String::from_utf8_lossy(name));
            begin_db(py, &gate, idx, pid, conn.unbind(), what, at, func as usize)
        }
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn begin_db(
    py: Python<'_>,
    gate: &MarkerGate,
    idx: ThreadIdx,
    pid: i64,
    conn: Py<PyAny>,
    what: String,
    at: String,
    key: usize,
) -> PyResult<()> {
    if HOOK.with(|h| h.borrow().as_ref().is_some_and(|c| c.db_call.is_some())) {
        return Ok(()); // a nested call of the same statement
    }
    let id = gate.begin_db_call(py, idx, pid, conn, what, at)?;
    HOOK.with(|h| {
        if let Some(ctx) = h.borrow_mut().as_mut() {
            ctx.db_call = Some((id, key));
        }
    });
    Ok(())
}

/// Whether the calling thread owns the RLock `lock`.
fn owns(lock: &Bound<'_, PyAny>) -> PyResult<bool> {
    lock.call_method0(pyo3::intern!(lock.py(), "_is_owned"))?
        .is_truthy()
}

/// Whether a `release()` of the RLock `lock` by the calling thread now
/// leaves it free: the thread owns it at recursion depth 1.
fn releases_fully(lock: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !owns(lock)? {
        return Ok(false);
    }
    let py = lock.py();
    // `_recursion_count` exists from CPython 3.11; 3.10's repr carries the
    // count (`... owner=N count=C at 0x...`).
    if let Ok(count) = lock.call_method0(pyo3::intern!(py, "_recursion_count")) {
        return Ok(count.extract::<u64>()? == 1);
    }
    let repr = lock.repr()?.to_string();
    Ok(repr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("count="))
        .is_some_and(|c| c == "1"))
}

/// Whether acquiring `lock` now would wait for another thread.
fn would_block(lock: &Bound<'_, PyAny>, kind: BlockKind) -> PyResult<bool> {
    let py = lock.py();
    if kind == BlockKind::Lock {
        return lock.call_method0(pyo3::intern!(py, "locked"))?.is_truthy();
    }
    if owns(lock)? {
        return Ok(false);
    }
    // An RLock owned by nobody is free; trying it (the turn is ours, so no
    // traced thread can interfere) and giving it back tells which.
    let got = lock
        .call_method1(pyo3::intern!(py, "acquire"), (false,))?
        .is_truthy()?;
    if got {
        lock.call_method0(pyo3::intern!(py, "release"))?;
    }
    Ok(!got)
}

/// How long the `acquire` call being made at `frame`'s current instruction
/// may wait: `Some(0.0)` for a try-lock, `Some(t)` for a timed wait, `None`
/// for no limit. Reading the call's arguments needs the bytecode; this runs
/// only when the lock is taken, so the `dis`-based helper's cost does not
/// matter.
///
/// # Safety
/// The GIL is held and `frame` is valid or null.
unsafe fn acquire_wait(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> PyResult<Option<f64>> {
    if frame.is_null() {
        return Ok(None);
    }
    // SAFETY: `frame` is a valid borrowed frame object.
    let frame = unsafe { Bound::from_borrowed_ptr(py, frame.cast::<ffi::PyObject>()) };
    py.import("frontrun._lock_calls")?
        .getattr("acquire_wait")?
        .call1((frame,))?
        .extract()
}

/// A Python function starts: record psycopg 3's database calls.
///
/// # Safety
/// The GIL is held and `frame` is valid.
unsafe fn on_py_call(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> PyResult<()> {
    // SAFETY: `frame` is valid; the new reference is owned by the Bound.
    let code =
        unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame).cast::<ffi::PyObject>()) };
    let key = code.as_ptr() as usize;
    let Some((gate, idx, interesting)) = HOOK.with(|h| -> PyResult<_> {
        let mut h = h.borrow_mut();
        let Some(ctx) = h.as_mut() else {
            return Ok(None);
        };
        let interesting = match ctx.codes.get(&key) {
            Some((_, i)) => *i,
            None => {
                let i = is_psycopg3_call(py, &code)?;
                ctx.codes.insert(key, (code.clone().unbind(), i));
                i
            }
        };
        Ok(Some((ctx.gate.clone(), ctx.idx, interesting)))
    })?
    else {
        return Ok(());
    };
    if !interesting {
        return Ok(());
    }
    // SAFETY: `frame` is a valid borrowed frame object.
    let frame_obj = unsafe { Bound::from_borrowed_ptr(py, frame.cast::<ffi::PyObject>()) };
    let locals = frame_obj.getattr(pyo3::intern!(py, "f_locals"))?;
    let Ok(Some(this)) = locals
        .downcast::<PyDict>()
        .map(|d| d.get_item("self").ok().flatten())
    else {
        return Ok(());
    };
    let conn = this
        .getattr(pyo3::intern!(py, "_conn"))
        .unwrap_or_else(|_| this.clone());
    let Ok(pid) = conn
        .getattr(pyo3::intern!(py, "info"))
        .and_then(|i| i.getattr(pyo3::intern!(py, "backend_pid")))
        .and_then(|p| p.extract::<i64>())
    else {
        return Ok(());
    };
    // SAFETY: `frame` is valid; its back frame (new reference or null) is
    // only used for its location.
    let at = unsafe {
        let back = ffi::PyFrame_GetBack(frame);
        let at = location(py, back);
        if !back.is_null() {
            ffi::Py_DECREF(back.cast::<ffi::PyObject>());
        }
        at
    };
    let name: String = code
        .getattr(pyo3::intern!(py, "co_name"))?
        .extract()
        .unwrap_or_default();
    let what = format!("psycopg {name}()");
    begin_db(py, &gate, idx, pid, conn.unbind(), what, at, frame as usize)
}

fn is_psycopg3_call(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<bool> {
    let name: String = code.getattr(pyo3::intern!(py, "co_name"))?.extract()?;
    if !matches!(
        name.as_str(),
        "execute" | "executemany" | "commit" | "rollback"
    ) {
        return Ok(false);
    }
    let file: String = code
        .getattr(pyo3::intern!(py, "co_filename"))?
        .extract()
        .unwrap_or_default();
    let file = file.replace('\\', "/");
    Ok(file.ends_with("/psycopg/cursor.py") || file.ends_with("/psycopg/connection.py"))
}

/// A call ended (`key` is the C function or the frame): a lock call or
/// database call that gave the turn away takes it back.
fn on_return(py: Python<'_>, key: usize) -> PyResult<()> {
    let Some((gate, idx, lock_done, db_done)) = HOOK.with(|h| {
        let mut h = h.borrow_mut();
        let ctx = h.as_mut()?;
        let lock_done = ctx.lock_call == Some(key);
        if lock_done {
            ctx.lock_call = None;
        }
        let db_done = match ctx.db_call {
            Some((id, k)) if k == key => {
                ctx.db_call = None;
                Some(id)
            }
            _ => None,
        };
        if !lock_done && db_done.is_none() {
            return None;
        }
        Some((ctx.gate.clone(), ctx.idx, lock_done, db_done))
    }) else {
        return Ok(());
    };
    let was_blocked = db_done.is_some_and(|id| gate.end_db_call(idx, id));
    if lock_done || was_blocked {
        gate.on_unblock(py, idx)
            .map_err(crate::marker_errors::stop_error)?;
    }
    Ok(())
}
