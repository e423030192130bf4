//! A fingerprint of the state a thread is in when it reaches a timed wait.
//!
//! The scheduler holds a repeated timeout back until another thread moved,
//! which is sound only when timing out again would change nothing (see
//! `frontrun_engine::turns`). Two fingerprints are equal when the thread is
//! back at the same instruction of every frame with the same locals: a
//! polling loop that only re-checks (`while not ev.wait(0.1): pass`) repeats
//! itself, one that counts its timeouts (`n += 1`) does not.
//!
//! What the fingerprint covers:
//! - every frame's code object and instruction;
//! - the locals of the frames the tracer traces (the program's code and
//!   installed packages). The standard library's frames are left out: their
//!   locals hold deadlines derived from the clock (`queue.Queue.get`), which
//!   would make every repeat look new, and their own waits wait for the whole
//!   time left, so one timeout reaches their deadline;
//! - shared objects by identity: whatever the thread writes to them is an
//!   event the scheduler counts;
//! - private values by content, to a bounded depth and size.
//!
//! Anything it cannot read soundly gives `None`, which is never a stutter: a
//! value of a C type it does not know (an open file, an iterator), a class
//! with `__slots__` or a builtin base, a wait inside a `for` loop (the
//! loop's iterator lives on the value stack, which is not read), and any
//! state past the bounds.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyTuple, PyType};

use super::code::{self, CodeInfo};
use super::keys::{fnv_tagged, mix};
use super::ops::Opcode;
use super::registry;
use super::share::{instance_dict, is_code_like};

/// How deep private containers and objects are read.
const MAX_DEPTH: usize = 4;
/// How many values are read in all.
const MAX_VALUES: usize = 512;

/// The fingerprint of the current thread's frames (see the module doc).
pub fn fingerprint(py: Python<'_>) -> Option<u64> {
    // SAFETY: GIL held; a borrowed frame of this thread or NULL, of which
    // `from_borrowed_ptr_or_opt` takes a new reference.
    let mut frame: Option<Bound<'_, PyAny>> =
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyEval_GetFrame().cast()) };
    let mut walk = Walk {
        left: MAX_VALUES,
        seen: Vec::new(),
    };
    let mut h = fnv_tagged(b'w', &[]);
    while let Some(f) = frame {
        let fp = f.as_ptr().cast::<ffi::PyFrameObject>();
        // SAFETY: `fp` is a live frame held by `f`; a new reference.
        let code = unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(fp).cast()) };
        let lasti: i64 = f
            .getattr(pyo3::intern!(py, "f_lasti"))
            .ok()?
            .extract()
            .ok()?;
        h = mix(mix(h, code.as_ptr() as u64), lasti as u64);
        let globals = f.getattr(pyo3::intern!(py, "f_globals")).ok();
        let info = code::info_in(py, &code, globals.as_ref()).ok()?;
        if info.traced {
            if in_for_body(&info, usize::try_from(lasti / 2).ok()?) {
                return None;
            }
            let locals = f.getattr(pyo3::intern!(py, "f_locals")).ok()?;
            let items = locals.call_method0(pyo3::intern!(py, "items")).ok()?;
            for item in items.try_iter().ok()? {
                let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                    item.ok()?.extract().ok()?;
                let name: String = name.extract().ok()?;
                h = mix(h, fnv_tagged(b'n', name.as_bytes()));
                h = mix(h, walk.value(&value, 0)?);
            }
        }
        // SAFETY: as above; a new reference or NULL.
        frame = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyFrame_GetBack(fp).cast()) };
    }
    Some(h)
}

/// Whether code unit `unit` lies in the body of one of the code's `for`
/// loops (`FOR_ITER` jumps forward by its argument past the body).
fn in_for_body(info: &CodeInfo, unit: usize) -> bool {
    info.instrs.iter().enumerate().any(|(i, ins)| {
        ins.op == Opcode::ForIter && i < unit && unit <= (ins.next + ins.arg) as usize
    })
}

struct Walk {
    left: usize,
    /// Private containers on the current path (a cycle is hashed by
    /// identity where it closes).
    seen: Vec<usize>,
}

impl Walk {
    fn value(&mut self, v: &Bound<'_, PyAny>, depth: usize) -> Option<u64> {
        self.left = self.left.checked_sub(1)?;
        let p = v.as_ptr();
        if let Some(id) = registry::lookup(p) {
            return Some(mix(fnv_tagged(b'r', &[]), id));
        }
        let ty = v.get_type();
        let ty_id = ty.as_ptr() as u64;
        if v.is_none() || is_exact_scalar(v) {
            // Exact builtin types only: their hash runs no user code.
            let hash = v.hash().ok()?;
            return Some(mix(ty_id, hash as u64));
        }
        if identity_only(v) {
            return Some(mix(fnv_tagged(b'i', &[]), p as u64));
        }
        if self.seen.contains(&(p as usize)) {
            return Some(mix(fnv_tagged(b'c', &[]), p as u64));
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        self.seen.push(p as usize);
        let out = self.content(v, &ty, depth);
        self.seen.pop();
        out.map(|h| mix(ty_id, h))
    }

    /// The content of a private container or object.
    fn content(
        &mut self,
        v: &Bound<'_, PyAny>,
        ty: &Bound<'_, PyType>,
        depth: usize,
    ) -> Option<u64> {
        let mut h = fnv_tagged(b'v', &[]);
        let d = depth + 1;
        if v.is_exact_instance_of::<PyTuple>()
            || v.is_exact_instance_of::<PyList>()
            || v.is_exact_instance_of::<PyFrozenSet>()
            || v.is_exact_instance_of::<PySet>()
        {
            for x in v.try_iter().ok()? {
                h = mix(h, self.value(&x.ok()?, d)?);
            }
            return Some(h);
        }
        if let Ok(dict) = v.downcast_exact::<PyDict>() {
            return self.dict(dict, d);
        }
        if ty.is(&method_type(v.py())?) {
            let me = v.getattr(pyo3::intern!(v.py(), "__self__")).ok()?;
            let func = v.getattr(pyo3::intern!(v.py(), "__func__")).ok()?;
            return Some(mix(mix(h, self.value(&me, d)?), func.as_ptr() as u64));
        }
        // An instance of classes written in Python whose state is all in its
        // `__dict__`.
        if !plain_python_class(ty)? {
            return None;
        }
        let dict = instance_dict(v)?;
        let dict = dict.downcast_exact::<PyDict>().ok()?;
        self.dict(dict, d)
    }

    fn dict(&mut self, dict: &Bound<'_, PyDict>, depth: usize) -> Option<u64> {
        let mut h = fnv_tagged(b'd', &[]);
        for (k, x) in dict.iter() {
            h = mix(h, self.value(&k, depth)?);
            h = mix(h, self.value(&x, depth)?);
        }
        Some(h)
    }
}

fn is_exact_scalar(v: &Bound<'_, PyAny>) -> bool {
    let p = v.as_ptr();
    // SAFETY: `p` is alive (borrowed from `v`), GIL held; type checks only.
    unsafe {
        ffi::PyLong_CheckExact(p) != 0
            || ffi::PyBool_Check(p) != 0
            || ffi::PyFloat_CheckExact(p) != 0
            || ffi::PyUnicode_CheckExact(p) != 0
            || ffi::PyBytes_CheckExact(p) != 0
            || ffi::PyComplex_CheckExact(p) != 0
    }
}

/// Values whose identity stands for their state as far as a thread's own
/// loop goes: code, functions, classes, modules (whose globals are shared).
fn identity_only(v: &Bound<'_, PyAny>) -> bool {
    // SAFETY: as in `is_exact_scalar`.
    is_code_like(v) || unsafe { ffi::PyCode_Check(v.as_ptr()) != 0 }
}

/// Whether every class of `ty`'s MRO but `object` is written in Python and
/// declares no `__slots__` (so the instance's state is its `__dict__`).
fn plain_python_class(ty: &Bound<'_, PyType>) -> Option<bool> {
    let py = ty.py();
    let object = py.get_type::<pyo3::types::PyAny>();
    for base in ty.mro().iter() {
        if base.is(&object) {
            continue;
        }
        let base = base.downcast::<PyType>().ok()?;
        // SAFETY: a live type object, GIL held.
        let heap =
            unsafe { ffi::PyType_HasFeature(base.as_ptr().cast(), ffi::Py_TPFLAGS_HEAPTYPE) != 0 };
        if !heap {
            return Some(false);
        }
        let own = base.getattr(pyo3::intern!(py, "__dict__")).ok()?;
        if own.contains(pyo3::intern!(py, "__slots__")).ok()? {
            return Some(false);
        }
    }
    Some(true)
}

/// `types.MethodType` (not exported by the C API bindings).
fn method_type(py: Python<'_>) -> Option<Bound<'_, PyType>> {
    static TYPE: pyo3::sync::GILOnceCell<Py<PyType>> = pyo3::sync::GILOnceCell::new();
    TYPE.import(py, "types", "MethodType").ok().cloned()
}
