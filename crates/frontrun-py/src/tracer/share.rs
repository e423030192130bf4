//! How an object takes part in sharing, read from its type alone (no user
//! code runs): the classification the registry and the tracer key accesses by.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// How an object takes part in sharing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// Never an owner, not walked.
    Immutable,
    /// Walked through (its items may be shared) but never an owner.
    Transparent,
    /// A list/dict/set/deque/bytearray: methods are classified by name.
    Container,
    /// A class instance, a class, a cell: accesses are keyed by name.
    Object,
}

struct Types {
    deque: usize,
    cell: usize,
    namespace: usize,
}

static TYPES: OnceLock<Types> = OnceLock::new();

/// Load the few type objects not exported by the C API (idempotent).
pub fn init(py: Python<'_>) -> PyResult<()> {
    if TYPES.get().is_none() {
        let addr = |m: &str, n: &str| -> PyResult<usize> {
            Ok(py.import(m)?.getattr(n)?.as_ptr() as usize)
        };
        let _ = TYPES.set(Types {
            deque: addr("collections", "deque")?,
            cell: addr("types", "CellType")?,
            namespace: addr("types", "SimpleNamespace")?,
        });
    }
    Ok(())
}

/// `init`, for entry points that cannot return an error: the imports it
/// needs (`collections`, `types`) are always available.
pub fn ensure_init(py: Python<'_>) {
    if TYPES.get().is_none() {
        if let Err(e) = init(py) {
            e.write_unraisable(py, None);
        }
    }
}

/// Classify `obj` for sharing.
pub fn kind(obj: &Bound<'_, PyAny>) -> ShareKind {
    match TYPES.get() {
        Some(t) => object_kind(obj, t.deque, t.cell, t.namespace),
        None => ShareKind::Immutable,
    }
}

/// Whether `obj`'s type is exactly `collections.deque`.
/// Functions, classes, modules and builtin functions.
pub fn is_code_like(obj: &Bound<'_, PyAny>) -> bool {
    let p = obj.as_ptr();
    // SAFETY: live object, GIL held; type checks only.
    unsafe {
        ffi::PyFunction_Check(p) != 0
            || ffi::PyType_Check(p) != 0
            || ffi::PyModule_Check(p) != 0
            || ffi::PyCFunction_Check(p) != 0
    }
}

pub fn is_exact_deque(obj: &Bound<'_, PyAny>) -> bool {
    TYPES
        .get()
        .is_some_and(|t| obj.get_type().as_ptr() as usize == t.deque)
}

/// Whether `obj` is a closure cell.
pub fn is_cell(obj: &Bound<'_, PyAny>) -> bool {
    TYPES
        .get()
        .is_some_and(|t| obj.get_type().as_ptr() as usize == t.cell)
}

/// Classify an object for sharing from its type's flags (cheap: called per
/// loaded value). `deque`, `cell`, `namespace` are those type objects.
fn object_kind(obj: &Bound<'_, PyAny>, deque: usize, cell: usize, namespace: usize) -> ShareKind {
    let obj = obj.as_ptr();
    // SAFETY: `obj` is alive (borrowed from a `Bound`) and the GIL is held;
    // only its type, the type's flags and, for heap types, the MRO are read.
    unsafe {
        let ty = ffi::Py_TYPE(obj);
        let flags = (*ty).tp_flags;
        if flags
            & (ffi::Py_TPFLAGS_LONG_SUBCLASS
                | ffi::Py_TPFLAGS_UNICODE_SUBCLASS
                | ffi::Py_TPFLAGS_BYTES_SUBCLASS)
            != 0
        {
            return ShareKind::Immutable;
        }
        if flags & (ffi::Py_TPFLAGS_LIST_SUBCLASS | ffi::Py_TPFLAGS_DICT_SUBCLASS) != 0 {
            return ShareKind::Container;
        }
        if flags & ffi::Py_TPFLAGS_TUPLE_SUBCLASS != 0 {
            return ShareKind::Transparent;
        }
        if flags & ffi::Py_TPFLAGS_TYPE_SUBCLASS != 0 {
            let heap = ffi::PyType_HasFeature(obj.cast(), ffi::Py_TPFLAGS_HEAPTYPE) != 0;
            return if heap {
                ShareKind::Object
            } else {
                ShareKind::Immutable
            };
        }
        let heap_type = flags & ffi::Py_TPFLAGS_HEAPTYPE != 0;
        let is = |base: *mut ffi::PyTypeObject| {
            ty == base || (heap_type && ffi::PyType_IsSubtype(ty, base) != 0)
        };
        if is(&raw mut ffi::PySet_Type)
            || is(&raw mut ffi::PyByteArray_Type)
            || is(deque as *mut ffi::PyTypeObject)
        {
            return ShareKind::Container;
        }
        if is(&raw mut ffi::PyFrozenSet_Type) {
            return ShareKind::Transparent;
        }
        if ty as usize == cell || ty as usize == namespace {
            return ShareKind::Object;
        }
        // Buffer-protocol objects (memoryview, array, numpy arrays): C code
        // reads and writes their storage directly, so they are accessed as a
        // whole.
        let buffer = (*ty).tp_as_buffer;
        if !buffer.is_null() && (*buffer).bf_getbuffer.is_some() && ffi::PyModule_Check(obj) == 0 {
            return ShareKind::Container;
        }
        if heap_type && ffi::PyFloat_Check(obj) == 0 && ffi::PyModule_Check(obj) == 0 {
            ShareKind::Object
        } else {
            ShareKind::Immutable
        }
    }
}

/// The instance dict of `obj` if its type has one, read without running
/// any `__getattribute__` (walks must not execute user code).
pub fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let p = obj.as_ptr();
    // SAFETY: `p` is alive (borrowed from a `Bound`), GIL held. The generic
    // getter is only called on types that declare a dict slot, which is what
    // it requires; it returns a new reference or NULL with an error set.
    unsafe {
        if (*ffi::Py_TYPE(p)).tp_dictoffset == 0 {
            return None;
        }
        let d = ffi::PyObject_GenericGetDict(p, std::ptr::null_mut());
        if d.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(Bound::from_owned_ptr(obj.py(), d))
    }
}
