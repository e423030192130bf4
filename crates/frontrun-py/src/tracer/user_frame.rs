//! The user's frame of an event.
//!
//! A statement run by SQLAlchemy, or a cache access inside cachetools,
//! happens many frames below the line the user wrote (`session.commit()`).
//! Explanations show the innermost frame that is the user's code (see
//! [`code::is_user_file`]); with full frames on, the frames inside the
//! libraries follow it, innermost last.

use std::sync::atomic::{AtomicBool, Ordering};

use frontrun_engine::turns::Loc;
use pyo3::ffi;
use pyo3::prelude::*;

use super::code;

/// Frames listed after the user's one, at most.
const MAX_VIA: usize = 12;

static FULL: AtomicBool = AtomicBool::new(false);

/// Show the library frames too (`explore(..., full_frames=True)`).
#[pyfunction]
pub fn _set_full_frames(on: bool) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        FULL.store(on, Ordering::Relaxed);
        Ok(())
    })
}

fn short(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// Whether the frame's code is the user's, from the code cache.
fn is_user(py: Python<'_>, frame: &Bound<'_, PyAny>, code: &Bound<'_, PyAny>) -> bool {
    let globals = frame.getattr(pyo3::intern!(py, "f_globals")).ok();
    code::info_in(py, code, globals.as_ref()).is_ok_and(|i| i.user)
}

fn is_frontrun(py: Python<'_>, frame: &Bound<'_, PyAny>) -> bool {
    frame
        .getattr(pyo3::intern!(py, "f_globals"))
        .and_then(|g| g.get_item("__name__"))
        .and_then(|n| n.extract::<String>())
        .is_ok_and(|m| m == "frontrun" || m.starts_with("frontrun."))
}

/// Where the current thread is, as the user sees it: the innermost frame of
/// the user's code (the innermost frame if none is), with the library
/// frames inside it when full frames are on. `None` without a Python frame.
pub fn user_loc(py: Python<'_>) -> Option<Loc> {
    // SAFETY: GIL held; `PyEval_GetFrame` returns a borrowed frame of this
    // thread or NULL, which `from_borrowed_ptr_or_opt` takes a new
    // reference to.
    let frame: Option<Bound<'_, PyAny>> =
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyEval_GetFrame().cast()) };
    user_loc_from(py, frame?).map(|(loc, _)| loc)
}

/// [`user_loc`] of the stack whose innermost frame is `frame` (a frame of
/// any thread), with the user's frame itself.
pub fn user_loc_from<'py>(
    py: Python<'py>,
    frame: Bound<'py, PyAny>,
) -> Option<(Loc, Bound<'py, PyAny>)> {
    let mut frame = Some(frame);
    let mut innermost: Option<(Loc, Bound<'py, PyAny>)> = None;
    let mut inner: Vec<(String, u32, String)> = Vec::new();
    while let Some(f) = frame {
        let fp = f.as_ptr().cast::<ffi::PyFrameObject>();
        // SAFETY: `fp` is a live frame object (held by `f`); both calls
        // return values we own (an int, a new reference).
        let (line, code) = unsafe {
            (
                ffi::PyFrame_GetLineNumber(fp),
                Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(fp).cast()),
            )
        };
        let file: String = code.getattr("co_filename").ok()?.extract().ok()?;
        let function: String = code.getattr("co_name").ok()?.extract().ok()?;
        let line = u32::try_from(line).unwrap_or(0);
        if is_user(py, &f, &code) {
            let via = (FULL.load(Ordering::Relaxed) && !inner.is_empty()).then(|| {
                inner
                    .iter()
                    .take(MAX_VIA)
                    .rev()
                    .map(|(f, l, func)| format!("{}:{l} {func}", short(f)))
                    .collect::<Vec<_>>()
                    .join(" > ")
            });
            let loc = Loc {
                file,
                line,
                function,
                via,
            };
            return Some((loc, f));
        }
        if innermost.is_none() {
            let loc = Loc {
                file: file.clone(),
                line,
                function: function.clone(),
                via: None,
            };
            innermost = Some((loc, f.clone()));
        }
        // frontrun's own frames (the driver proxies) say nothing about the
        // program, and would push its library frames out of the list.
        if !is_frontrun(py, &f) {
            inner.push((file, line, function));
        }
        // SAFETY: as above; `PyFrame_GetBack` returns a new reference or NULL.
        frame = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyFrame_GetBack(fp).cast()) };
    }
    innermost
}

/// Whether the innermost frame outside the standard library and frontrun
/// runs code of an untraced (trusted) package: `threading.Lock()` called by
/// SQLAlchemy's pool, directly or through `queue.Queue()`. Such a lock
/// guards the package's own state, which frontrun trusts and does not trace.
pub fn made_by_untraced_package(py: Python<'_>) -> bool {
    let Ok(st) = code::statics(py) else {
        return false;
    };
    if st.untraced_packages.is_empty() {
        return false;
    }
    // SAFETY: as in `user_loc`.
    let mut frame: Option<Bound<'_, PyAny>> =
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyEval_GetFrame().cast()) };
    while let Some(f) = frame {
        let module: Option<String> = f
            .getattr(pyo3::intern!(py, "f_globals"))
            .and_then(|g| g.get_item("__name__"))
            .and_then(|n| n.extract())
            .ok();
        if let Some(m) = &module {
            let top = m.split('.').next().unwrap_or("");
            if st.untraced_packages.iter().any(|p| p == top) {
                return true;
            }
        }
        let fp = f.as_ptr().cast::<ffi::PyFrameObject>();
        // SAFETY: `fp` is a live frame (held by `f`); a new reference.
        let code = unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(fp).cast()) };
        let file: String = match code.getattr("co_filename").and_then(|f| f.extract()) {
            Ok(file) => file,
            Err(_) => return false,
        };
        if code::is_traced_file(&file, &st.skip_dirs) {
            return false;
        }
        // SAFETY: as in `user_loc_from`.
        frame = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyFrame_GetBack(fp).cast()) };
    }
    false
}
