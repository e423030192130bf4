//! Per-version access to CPython frame internals.
//!
//! Frame layouts are private to CPython and change with every minor version,
//! so each version's layout is declared here under its own `cfg`, with the
//! offsets asserted at compile time, and cross-checked against the public API
//! at install time ([`self_check`]). Everything else in the tracer goes
//! through [`FrameView`], which only hands out stack slots inside the live
//! stack (`1 ≤ i ≤ depth ≤ co_stacksize`).

#![allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]

use std::mem::offset_of;
use std::os::raw::{c_char, c_int};

use pyo3::ffi;

// The layouts below exist for these builds only; refuse others outright
// rather than read memory with a guessed layout.
#[cfg(Py_GIL_DISABLED)]
compile_error!("frontrun's tracer does not support free-threaded CPython builds yet; build with a GIL interpreter (3.10-3.13)");
#[cfg(any(Py_3_14, not(Py_3_10)))]
compile_error!(
    "frontrun's tracer supports CPython 3.10-3.13 only; build with one of those interpreters"
);

/// Whether this build has a known frame layout (always, given the guards above).
pub const SUPPORTED: bool = cfg!(all(Py_3_10, not(Py_3_14), not(Py_GIL_DISABLED)));

/// CPython 3.10 `PyFrameObject` (Include/cpython/frameobject.h), up to the
/// fields read here.
#[cfg(all(Py_3_10, not(Py_3_11)))]
#[repr(C)]
struct Frame {
    ob_base: ffi::PyVarObject,
    f_back: *mut ffi::PyObject,
    f_code: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    f_valuestack: *mut *mut ffi::PyObject,
    f_trace: *mut ffi::PyObject,
    f_stackdepth: c_int,
    f_trace_lines: c_char,
    f_trace_opcodes: c_char,
    f_gen: *mut ffi::PyObject,
    f_lasti: c_int,
}
#[cfg(all(Py_3_10, not(Py_3_11)))]
const _: () = {
    assert!(offset_of!(Frame, f_code) == 32);
    assert!(offset_of!(Frame, f_globals) == 48);
    assert!(offset_of!(Frame, f_valuestack) == 64);
    assert!(offset_of!(Frame, f_stackdepth) == 80);
    assert!(offset_of!(Frame, f_trace_lines) == 84);
    assert!(offset_of!(Frame, f_trace_opcodes) == 85);
    assert!(offset_of!(Frame, f_lasti) == 96);
};

/// CPython 3.11–3.13 `PyFrameObject`: only the pointer to the interpreter
/// frame is read, and it sits at the same place in all three.
#[cfg(Py_3_11)]
#[repr(C)]
struct Frame {
    ob_base: ffi::PyObject,
    f_back: *mut ffi::PyObject,
    f_frame: *mut IFrame,
    f_trace: *mut ffi::PyObject,
    f_lineno: c_int,
    f_trace_lines: c_char,
    f_trace_opcodes: c_char,
}
#[cfg(Py_3_11)]
const _: () = {
    assert!(offset_of!(Frame, f_frame) == 24);
    assert!(offset_of!(Frame, f_trace_lines) == 44);
    assert!(offset_of!(Frame, f_trace_opcodes) == 45);
};

/// CPython 3.11 `_PyInterpreterFrame` (Include/internal/pycore_frame.h).
#[cfg(all(Py_3_11, not(Py_3_12)))]
#[repr(C)]
struct IFrame {
    f_func: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    f_code: *mut ffi::PyObject,
    frame_obj: *mut ffi::PyObject,
    previous: *mut IFrame,
    prev_instr: *mut u16,
    stacktop: c_int,
    is_entry: bool,
    owner: c_char,
    localsplus: [*mut ffi::PyObject; 1],
}
#[cfg(all(Py_3_11, not(Py_3_12)))]
const _: () = {
    assert!(offset_of!(IFrame, f_globals) == 8);
    assert!(offset_of!(IFrame, f_code) == 32);
    assert!(offset_of!(IFrame, stacktop) == 64);
    assert!(offset_of!(IFrame, localsplus) == 72);
};

/// CPython 3.12/3.13 `_PyInterpreterFrame` (`f_code` is `f_executable` in
/// 3.13, still the code object for Python frames).
#[cfg(Py_3_12)]
#[repr(C)]
struct IFrame {
    f_code: *mut ffi::PyObject,
    previous: *mut IFrame,
    f_funcobj: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    frame_obj: *mut ffi::PyObject,
    instr: *mut u16,
    stacktop: c_int,
    return_offset: u16,
    owner: c_char,
    localsplus: [*mut ffi::PyObject; 1],
}
#[cfg(Py_3_12)]
const _: () = {
    assert!(offset_of!(IFrame, f_globals) == 24);
    assert!(offset_of!(IFrame, stacktop) == 64);
    assert!(offset_of!(IFrame, localsplus) == 72);
};

#[cfg(Py_3_11)]
extern "C" {
    fn PyFrame_GetLasti(frame: *mut ffi::PyFrameObject) -> c_int;
}

/// Where the live value stack of a frame is, as far as it can be known.
pub enum StackDepth {
    /// 3.10/3.11: read from the frame.
    Live,
    /// 3.12+: precomputed per offset (`None`: unknown, do not read).
    Known(Option<u32>),
}

/// A frame seen from inside the trace function.
///
/// Invariant: `frame` is the frame the trace function was called with, and a
/// `FrameView` never outlives that call.
pub struct FrameView {
    frame: *mut ffi::PyFrameObject,
}

impl FrameView {
    /// # Safety
    /// `frame` must be the live frame passed to the trace function, and the
    /// view must not be used after the trace function returns.
    pub unsafe fn new(frame: *mut ffi::PyFrameObject) -> Self {
        FrameView { frame }
    }

    #[cfg(Py_3_11)]
    fn iframe(&self) -> *mut IFrame {
        // SAFETY: `frame` is a live `PyFrameObject` (type invariant) whose
        // layout up to `f_frame` is asserted above; a frame object being traced
        // always points to its interpreter frame.
        unsafe { (*self.frame.cast::<Frame>()).f_frame }
    }

    /// The frame's code object (borrowed).
    pub fn code(&self) -> *mut ffi::PyObject {
        #[cfg(not(Py_3_11))]
        // SAFETY: live frame (type invariant); 3.10 layout asserted above.
        unsafe {
            (*self.frame.cast::<Frame>()).f_code
        }
        #[cfg(Py_3_11)]
        // SAFETY: `iframe()` is valid while the frame executes; `f_code`
        // holds a strong reference for the frame's lifetime.
        unsafe {
            (*self.iframe()).f_code
        }
    }

    /// The frame's globals dict (borrowed).
    pub fn globals(&self) -> *mut ffi::PyObject {
        #[cfg(not(Py_3_11))]
        // SAFETY: as in `code`.
        unsafe {
            (*self.frame.cast::<Frame>()).f_globals
        }
        #[cfg(Py_3_11)]
        // SAFETY: as in `code`; `f_globals` is valid while the frame runs.
        unsafe {
            (*self.iframe()).f_globals
        }
    }

    /// Code unit index of the instruction about to execute, if known.
    pub fn unit(&self) -> Option<usize> {
        #[cfg(not(Py_3_11))]
        // SAFETY: as in `code`. On 3.10 `f_lasti` counts code units and is
        // set to the current instruction before an opcode event.
        let units = unsafe { (*self.frame.cast::<Frame>()).f_lasti };
        #[cfg(Py_3_11)]
        // SAFETY: public API, called on a live frame with the GIL held.
        let units = unsafe { PyFrame_GetLasti(self.frame) } / 2;
        usize::try_from(units).ok()
    }

    /// Base of the value stack and the number of live values on it.
    ///
    /// `nlocalsplus` is the code's `co_nlocalsplus` (3.11+), `stacksize` its
    /// `co_stacksize`; `None` if the depth is unknown or implausible.
    pub fn stack(&self, depth: StackDepth, nlocalsplus: usize, stacksize: u32) -> Option<Stack> {
        #[cfg(not(Py_3_11))]
        let (base, live) = {
            let _ = (depth, nlocalsplus);
            // SAFETY: as in `code`. 3.10 stores the live depth in
            // `f_stackdepth` before calling the trace function.
            let f = unsafe { &*self.frame.cast::<Frame>() };
            (f.f_valuestack, u32::try_from(f.f_stackdepth).ok()?)
        };
        #[cfg(all(Py_3_11, not(Py_3_12)))]
        let (base, live) = {
            let _ = depth;
            let iframe = self.iframe();
            // SAFETY: `iframe` is valid (see `code`); 3.11 stores `stacktop`
            // (values from `localsplus`) before calling the trace function.
            let top = unsafe { (*iframe).stacktop };
            let live = u32::try_from(i64::from(top) - nlocalsplus as i64).ok()?;
            // SAFETY: `localsplus` is a trailing array of at least
            // `nlocalsplus + co_stacksize` slots; only the address is formed.
            let base = unsafe {
                (&raw mut (*iframe).localsplus)
                    .cast::<*mut ffi::PyObject>()
                    .add(nlocalsplus)
            };
            (base, live)
        };
        #[cfg(Py_3_12)]
        let (base, live) = {
            let StackDepth::Known(Some(live)) = depth else {
                return None;
            };
            let iframe = self.iframe();
            // SAFETY: as in the 3.11 branch: the address of slot
            // `nlocalsplus` of the trailing `localsplus` array.
            let base = unsafe {
                (&raw mut (*iframe).localsplus)
                    .cast::<*mut ffi::PyObject>()
                    .add(nlocalsplus)
            };
            (base, live)
        };
        if live > stacksize {
            return None;
        }
        Some(Stack { base, depth: live })
    }

    /// Closure cell slot `index` of `localsplus` (3.11+) or of the cell/free
    /// area (3.10, where `ncellfree` is `len(co_cellvars) + len(co_freevars)`
    /// and the area ends where the value stack begins).
    pub fn cell_slot(
        &self,
        index: usize,
        nlocalsplus: usize,
        ncellfree: usize,
    ) -> Option<*mut ffi::PyObject> {
        #[cfg(not(Py_3_11))]
        {
            let _ = nlocalsplus;
            if index >= ncellfree {
                return None;
            }
            // SAFETY: as in `code`. 3.10 lays out locals, cells, frees, then
            // the value stack contiguously, so the cell area is the
            // `ncellfree` slots just below `f_valuestack`; `index` is in range.
            let p = unsafe {
                let vs = (*self.frame.cast::<Frame>()).f_valuestack;
                *vs.sub(ncellfree).add(index)
            };
            (!p.is_null()).then_some(p)
        }
        #[cfg(Py_3_11)]
        {
            let _ = ncellfree;
            if index >= nlocalsplus {
                return None;
            }
            let iframe = self.iframe();
            // SAFETY: `index < nlocalsplus`, inside the trailing array.
            let p = unsafe {
                *(&raw mut (*iframe).localsplus)
                    .cast::<*mut ffi::PyObject>()
                    .add(index)
            };
            (!p.is_null()).then_some(p)
        }
    }

    /// The frame's `(f_trace_lines, f_trace_opcodes)` fields.
    pub fn trace_flags(&self) -> (bool, bool) {
        // SAFETY: live frame (type invariant); the two `char` fields are at
        // the offsets asserted above for this version.
        let f = unsafe { &*self.frame.cast::<Frame>() };
        (f.f_trace_lines != 0, f.f_trace_opcodes != 0)
    }

    /// Write `f_trace_lines` / `f_trace_opcodes` directly. Equivalent to the
    /// attribute setters up to 3.12 (once `install` has set the interpreter's
    /// opcode-trace flag on 3.12); 3.13 must use [`Self::set_flag`] for
    /// opcodes, whose setter also instruments the code object.
    pub fn write_trace_flags(&self, lines: bool, opcodes: Option<bool>) {
        // SAFETY: live frame (type invariant), fields at asserted offsets;
        // plain `char` flags read by the interpreter at the next event.
        unsafe {
            let f = &mut *self.frame.cast::<Frame>();
            f.f_trace_lines = c_char::from(lines);
            if let Some(op) = opcodes {
                f.f_trace_opcodes = c_char::from(op);
            }
        }
    }

    /// Set a frame attribute (an interned name) through its Python setter,
    /// which keeps each version's own bookkeeping (e.g. 3.13's per-code
    /// instrumentation).
    pub fn set_flag(&self, name: &pyo3::Bound<'_, pyo3::types::PyString>, value: bool) -> bool {
        // SAFETY: live frame object, a live str name, GIL held; `Py_True`
        // and `Py_False` are immortal singletons.
        unsafe {
            let v = if value {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            };
            ffi::PyObject_SetAttr(self.frame.cast(), name.as_ptr(), v) == 0
        }
    }

    /// Run `f` with the frame's `f_trace` temporarily set to `True`, then put
    /// the previous value back, so user code never sees the tracer's marker
    /// (3.13 instruments a frame for opcode events only while `f_trace` is
    /// set, and the instrumentation outlives it).
    pub fn with_f_trace<R>(&self, py: pyo3::Python<'_>, f: impl FnOnce() -> R) -> R {
        let name = pyo3::intern!(py, "f_trace");
        // SAFETY: live frame object, GIL held; the old value is owned here
        // until it is put back.
        unsafe {
            let frame: *mut ffi::PyObject = self.frame.cast();
            let old = ffi::PyObject_GetAttr(frame, name.as_ptr());
            if old.is_null() {
                ffi::PyErr_Clear();
            }
            ffi::PyObject_SetAttr(frame, name.as_ptr(), ffi::Py_True());
            let r = f();
            let restore = if old.is_null() { ffi::Py_None() } else { old };
            if ffi::PyObject_SetAttr(frame, name.as_ptr(), restore) != 0 {
                ffi::PyErr_Clear();
            }
            if !old.is_null() {
                ffi::Py_DECREF(old);
            }
            r
        }
    }
}

/// The live part of a value stack.
pub struct Stack {
    base: *mut *mut ffi::PyObject,
    depth: u32,
}

impl Stack {
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The `i`-th value from the top (1 = top of stack), or `None` if outside
    /// the live stack or NULL (3.11+ pushes NULL markers for calls).
    pub fn peek(&self, i: u32) -> Option<*mut ffi::PyObject> {
        if i == 0 || i > self.depth {
            return None;
        }
        // SAFETY: `1 ≤ i ≤ depth ≤ co_stacksize`, so the slot lies inside the
        // frame's value stack and holds a value pushed and not yet popped.
        let p = unsafe { *self.base.add((self.depth - i) as usize) };
        (!p.is_null()).then_some(p)
    }
}

/// Check the layout against the public API on a live frame (the caller's):
/// code and globals must agree. Returns a description of the mismatch.
pub fn self_check() -> Result<(), String> {
    // SAFETY: GIL held by the caller; returns a borrowed frame or NULL.
    let frame = unsafe { ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return Ok(());
    }
    // SAFETY: `frame` is the current, live frame for this call.
    let view = unsafe { FrameView::new(frame) };
    // SAFETY: public API on a live frame; returns a new reference.
    let code = unsafe { ffi::PyFrame_GetCode(frame) };
    let same_code = std::ptr::eq(code.cast::<ffi::PyObject>(), view.code());
    // SAFETY: `code` is the new reference returned above.
    unsafe { ffi::Py_DECREF(code.cast()) };
    // SAFETY: GIL held; borrowed globals of the current frame.
    let globals = unsafe { ffi::PyEval_GetGlobals() };
    if !same_code || !std::ptr::eq(globals, view.globals()) {
        return Err("the frame layout does not match this interpreter build".into());
    }
    // The flag fields must move with the Python attribute.
    let name = c"f_trace_lines";
    let before = view.trace_flags().0;
    let mut agrees = true;
    for value in [!before, before] {
        // SAFETY: live frame, valid C string, GIL held; immortal bools.
        let ok = unsafe {
            let v = if value {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            };
            ffi::PyObject_SetAttrString(frame.cast(), name.as_ptr(), v) == 0
        };
        agrees &= ok && view.trace_flags().0 == value;
    }
    if !agrees {
        return Err("the frame flag layout does not match this interpreter build".into());
    }
    Ok(())
}
