//! A C-level line tracer that stops threads at trace markers.
//!
//! `PyEval_SetTrace` installs it on the calling thread only, which is exactly
//! the scope wanted: the executor's scheduled threads. On each line event it
//! finds the marker table of the frame's code object (cached per code object,
//! so the usual case is one pointer comparison) and, on a tagged line, hands
//! the thread to the [`MarkerGate`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::raw::c_int;
use std::sync::Arc;

use frontrun_engine::marker_schedule::ThreadIdx;
use frontrun_engine::markers::FileMarkers;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::marker_gate::{Failure, MarkerGate};
use frontrun_engine::hash::FastMap;
use frontrun_engine::marker_files::{markers_of, FileScan};

/// What a code object's file holds: its path and its markers, if any.
#[derive(Clone)]
struct LineCodeInfo {
    file: Arc<str>,
    markers: Option<Arc<FileMarkers>>,
    /// Lines that enter a `with` on a plain name or attribute chain.
    withs: Option<Arc<WithLines>>,
}

/// Where a `with` statement's context manager is found: `(scope, name,
/// attributes)`, scope being `"fast"`, `"global"` or `"name"`.
type WithTarget = (String, String, Vec<String>);

/// `with` lines of one code object.
type WithLines = HashMap<u32, WithTarget>;

/// Tracing state of the current thread.
struct ThreadCtx {
    gate: Arc<MarkerGate>,
    idx: ThreadIdx,
    /// Keeps each cached code object alive so its address cannot be reused
    /// by another object while the entry exists.
    codes: FastMap<usize, (Py<PyAny>, Option<LineCodeInfo>)>,
    last_code: usize,
    last_info: Option<LineCodeInfo>,
    /// The abort was already raised in this thread; let it unwind in peace.
    abort_delivered: bool,
    /// The last marked line reached: frame address, line, instruction
    /// offset. A statement spanning several lines fires the line event of
    /// its first line again further on (a larger offset, same frame): that
    /// is still the same visit, not a new one to pause at.
    last_mark: (usize, i32, i32),
}

thread_local! {
    static CTX: RefCell<Option<ThreadCtx>> = const { RefCell::new(None) };
}

/// Start tracing the current thread on behalf of thread `idx` of `gate`.
pub fn install(_py: Python<'_>, gate: Arc<MarkerGate>, idx: ThreadIdx) {
    CTX.with(|c| {
        *c.borrow_mut() = Some(ThreadCtx {
            gate,
            idx,
            codes: HashMap::default(),
            last_code: 0,
            last_info: None,
            abort_delivered: false,
            last_mark: (0, 0, -1),
        });
    });
    // SAFETY: the GIL is held (witnessed by `_py`); PyEval_SetTrace affects
    // only the calling thread's state, and `trace_line` matches the
    // `Py_tracefunc` signature. Py_None is immortal/static, so passing it as
    // the trace object without an extra reference is fine (CPython increfs it).
    unsafe { ffi::PyEval_SetTrace(Some(trace_line), ffi::Py_None()) };
}

/// Stop tracing the current thread and drop its caches.
pub fn uninstall(_py: Python<'_>) {
    // SAFETY: the GIL is held; clearing the trace function of the calling
    // thread is always allowed.
    unsafe { ffi::PyEval_SetTrace(None, std::ptr::null_mut()) };
    // Taking the context out first: dropping the cached code objects may run
    // Python deallocators, which must not find the RefCell borrowed.
    let ctx = CTX.with(|c| c.borrow_mut().take());
    drop(ctx);
}

/// The trace function.
///
/// # Safety
/// Called by CPython with the GIL held and a valid, borrowed `frame`.
unsafe extern "C" fn trace_line(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    if what != ffi::PyTrace_LINE {
        return 0;
    }
    // SAFETY: CPython calls trace functions only with the GIL held.
    let py = unsafe { Python::assume_gil_acquired() };
    // A panic must not unwind into CPython's C frames (that aborts the
    // process): it becomes an exception in the traced thread.
    // SAFETY: `frame` is the live frame CPython passed us.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        if crate::ffi_guard::take_line_panic_request() {
            panic!("test-only panic in the line tracer");
        }
        on_line(py, frame)
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

/// Handle one line event of the current thread.
///
/// # Safety
/// The GIL is held and `frame` is a valid frame.
unsafe fn on_line(py: Python<'_>, frame: *mut ffi::PyFrameObject) -> PyResult<()> {
    // A `with` that gave the turn away has its lock now: take the turn back
    // before running anything else.
    crate::block_hook::resume_after_with(py)?;
    let mut withs: Option<(Arc<WithLines>, Arc<MarkerGate>, ThreadIdx)> = None;
    let hit = CTX.with(|c| -> PyResult<Option<MarkedCode>> {
        let mut guard = c.borrow_mut();
        let Some(ctx) = guard.as_mut() else {
            return Ok(None);
        };
        let aborted = ctx.gate.is_aborted();
        if aborted && ctx.abort_delivered {
            // Unwinding: never pause or raise again in this thread.
            return Ok(None);
        }
        // Once every step is taken markers pass freely, but `with` lines
        // still have to be watched: a blocking one must pass the turn.
        let released = !aborted && ctx.gate.is_released();
        // SAFETY: `frame` is valid; PyFrame_GetCode returns a new reference
        // that `Bound::from_owned_ptr` takes over and releases on drop.
        let code = unsafe {
            Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame).cast::<ffi::PyObject>())
        };
        let key = code.as_ptr() as usize;
        if key != ctx.last_code {
            let info = match ctx.codes.get(&key) {
                Some((_, info)) => info.clone(),
                None => {
                    let info = code_info(py, &ctx.gate, &code)?;
                    ctx.codes.insert(key, (code.clone().unbind(), info.clone()));
                    info
                }
            };
            ctx.last_code = key;
            ctx.last_info = info;
        }
        if let Some(LineCodeInfo { withs: Some(w), .. }) = &ctx.last_info {
            withs = Some((w.clone(), ctx.gate.clone(), ctx.idx));
        }
        if released {
            return Ok(None);
        }
        let marked = matches!(
            &ctx.last_info,
            Some(LineCodeInfo {
                markers: Some(_),
                ..
            })
        );
        if aborted && marked {
            // Unwind from the code under test (a file with markers), not
            // from inside the standard library or frontrun's own helpers,
            // whose internal state (locks, hand-offs) must stay consistent.
            ctx.abort_delivered = true;
            let reason = ctx.gate.lock().abort_reason.clone().unwrap_or_default();
            return Err(crate::marker_errors::abort_error(&reason));
        }
        // The common case, a file without markers, ends here without cloning.
        Ok(match &ctx.last_info {
            Some(LineCodeInfo {
                file,
                markers: Some(markers),
                ..
            }) => Some(MarkedCode {
                gate: ctx.gate.clone(),
                idx: ctx.idx,
                file: file.clone(),
                markers: markers.clone(),
            }),
            _ => None,
        })
    })?;
    if hit.is_none() && withs.is_none() {
        return Ok(());
    }
    // SAFETY: `frame` is valid and the GIL is held.
    let line = unsafe { ffi::PyFrame_GetLineNumber(frame) };
    if let Some(hit) = hit {
        // SAFETY: as above.
        unsafe { on_marked_line(py, frame, line, hit)? };
    }
    if let Some((withs, gate, idx)) = withs {
        if let Some(target) = u32::try_from(line).ok().and_then(|l| withs.get(&l)) {
            // SAFETY: as above.
            unsafe { crate::block_hook::check_with(py, frame, target, &gate, idx)? };
        }
    }
    Ok(())
}

/// A line event in a file with markers: pause at a marked line.
///
/// # Safety
/// The GIL is held and `frame` is a valid frame.
unsafe fn on_marked_line(
    py: Python<'_>,
    frame: *mut ffi::PyFrameObject,
    line: i32,
    hit: MarkedCode,
) -> PyResult<()> {
    let Some(names) = u32::try_from(line)
        .ok()
        .and_then(|l| hit.markers.at_line(l))
    else {
        return Ok(());
    };
    // SAFETY: `frame` is a valid borrowed frame object.
    let lasti: i32 = unsafe { Bound::from_borrowed_ptr(py, frame.cast::<ffi::PyObject>()) }
        .getattr(pyo3::intern!(py, "f_lasti"))
        .and_then(|l| l.extract())
        .unwrap_or(-1);
    let revisit = CTX.with(|c| {
        let mut c = c.borrow_mut();
        let Some(ctx) = c.as_mut() else {
            return false;
        };
        let (f, l, i) = ctx.last_mark;
        let same = f == frame as usize && l == line && lasti > i;
        ctx.last_mark = (frame as usize, line, lasti);
        same
    });
    if revisit {
        return Ok(());
    }
    let stopped = hit
        .gate
        .on_marker(py, hit.idx, names, || format!("{}:{line}", hit.file));
    match stopped {
        Ok(()) => Ok(()),
        Err(stop) => {
            CTX.with(|c| {
                if let Some(ctx) = c.borrow_mut().as_mut() {
                    ctx.abort_delivered = true;
                }
            });
            Err(crate::marker_errors::stop_error(stop))
        }
    }
}

/// A line event in a code object whose file has markers.
struct MarkedCode {
    gate: Arc<MarkerGate>,
    idx: ThreadIdx,
    file: Arc<str>,
    markers: Arc<FileMarkers>,
}

/// Resolve a code object's file and markers (once per code object and thread).
fn code_info(
    py: Python<'_>,
    gate: &MarkerGate,
    code: &Bound<'_, PyAny>,
) -> PyResult<Option<LineCodeInfo>> {
    let filename = code.getattr(pyo3::intern!(py, "co_filename"))?;
    let Ok(path) = filename.extract::<String>() else {
        return Ok(None);
    };
    let withs = with_lines(py, code)?;
    let markers = match markers_of(&path) {
        FileScan::Unreadable if withs.is_none() => return Ok(None),
        FileScan::Unreadable => None,
        FileScan::NoMarkers => None,
        FileScan::Markers(m) => Some(m),
        FileScan::Duplicate(dup) => {
            let msg = format!("{path}: {dup}");
            gate.fail(Failure::Duplicate { file: path, dup });
            gate.abort(&msg);
            return Err(crate::marker_errors::DuplicateMarkerError::new_err(msg));
        }
    };
    gate.note_file(&path, markers.clone());
    Ok(Some(LineCodeInfo {
        file: Arc::from(path.as_str()),
        markers,
        withs,
    }))
}

/// The `with` lines of `code`, if it has any `with` at all (a scan of its
/// bytecode for `BEFORE_WITH` first, so most code objects cost no more).
fn with_lines(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Option<Arc<WithLines>>> {
    static BEFORE_WITH: std::sync::OnceLock<Option<u8>> = std::sync::OnceLock::new();
    let op = *BEFORE_WITH.get_or_init(|| {
        py.import("dis")
            .and_then(|d| d.getattr("opmap")?.get_item("BEFORE_WITH")?.extract::<u8>())
            .ok()
    });
    let Some(op) = op else {
        return Ok(None);
    };
    let bytes: Vec<u8> = code.getattr(pyo3::intern!(py, "co_code"))?.extract()?;
    if !bytes.chunks_exact(2).any(|unit| unit[0] == op) {
        return Ok(None);
    }
    let found: HashMap<u32, WithTarget> = py
        .import("frontrun._lock_calls")?
        .getattr("with_targets")?
        .call1((code,))?
        .extract()?;
    Ok((!found.is_empty()).then(|| Arc::new(found)))
}
