//! Who is being called: traced Python code (nothing to do, its bytecode is
//! traced) or opaque code, with its [`Effect`] and bound `self`.
//!
//! Names are computed in Python once per callee and cached in a bounded
//! per-thread map. Only callees whose identity outlives the cache entry are
//! cached: a builtin function or method by its `PyMethodDef` (static), other
//! callees by address with a strong reference held, so an address is never
//! reused while cached.

use std::cell::RefCell;

use pyo3::ffi;
use pyo3::prelude::*;

use super::code;
use super::keys::FastMap;
use super::opaque::{effect_of, known, Effect};

/// What a call hands its arguments to.
pub enum Callee {
    /// Python code that is traced: its own accesses are seen.
    Traced,
    /// Opaque code; `bound` is the `self` it was bound to, if any.
    Opaque {
        effect: Effect,
        bound: Option<*mut ffi::PyObject>,
    },
}

/// Entries beyond this clear the cache (bounded in long-lived processes).
pub const MAX_CACHED: usize = 2048;

/// A cached effect, with the callee kept alive when keyed by its address.
type CalleeEntry = (Option<Py<PyAny>>, Effect);

thread_local! {
    static CACHE: RefCell<FastMap<usize, CalleeEntry>> = RefCell::new(FastMap::default());
}

const NAME_OF: &std::ffi::CStr = cr#"
def name_of(f):
    q = getattr(f, "__qualname__", None)
    if not isinstance(q, str):
        q = getattr(f, "__name__", None)
    if not isinstance(q, str):
        q = type(f).__qualname__
    m = getattr(f, "__module__", None) if isinstance(f, type) or not hasattr(f, "__objclass__") else None
    if not isinstance(m, str):
        owner = getattr(f, "__objclass__", None)
        if owner is None:
            s = getattr(f, "__self__", None)
            owner = s if isinstance(s, type) else type(s)
        m = getattr(owner, "__module__", None)
    return f"{m}.{q}"
"#;

static HELPER: std::sync::OnceLock<Py<PyAny>> = std::sync::OnceLock::new();

fn name_of(f: &Bound<'_, PyAny>) -> String {
    let py = f.py();
    let helper = match HELPER.get() {
        Some(h) => h,
        None => {
            let Ok(m) = PyModule::from_code(py, NAME_OF, c"<frontrun-callee>", c"_frontrun_callee")
            else {
                return String::new();
            };
            let Ok(func) = m.getattr("name_of") else {
                return String::new();
            };
            let _ = HELPER.set(func.unbind());
            HELPER.get().expect("just set")
        }
    };
    match helper
        .bind(py)
        .call1((f,))
        .and_then(|n| n.extract::<String>())
    {
        Ok(n) => n,
        Err(e) => {
            drop(e);
            String::new()
        }
    }
}

/// The effect of a named opaque callee; frontrun's own code (cooperative
/// primitives, already modelled) touches nothing here.
fn effect_named(name: &str) -> Effect {
    if name.starts_with("frontrun.") {
        Effect::Pure
    } else {
        effect_of(name)
    }
}

/// The effect of untraced Python code named `name`: standard-library code
/// the table does not describe is [`Effect::Untraced`].
fn python_effect_named(name: &str, stdlib: bool) -> Effect {
    if name.starts_with("frontrun.") || known(name) {
        effect_named(name)
    } else if stdlib {
        Effect::Untraced
    } else {
        Effect::Package
    }
}

/// Whether `code` is the standard library's (not an installed package's).
fn stdlib_code(code: &Bound<'_, PyAny>) -> bool {
    let Ok(file) = code
        .getattr("co_filename")
        .and_then(|f| f.extract::<String>())
    else {
        return false;
    };
    if file.starts_with("<frozen") {
        return true;
    }
    let Ok(st) = code::statics(code.py()) else {
        return false;
    };
    !file.contains("/site-packages/")
        && !file.contains("/dist-packages/")
        && st.skip_dirs.iter().any(|d| file.starts_with(d.as_str()))
}

fn cached(key: usize, keep: Option<&Bound<'_, PyAny>>, f: &Bound<'_, PyAny>) -> Effect {
    cached_as(key, keep, f, effect_named)
}

fn cached_as(
    key: usize,
    keep: Option<&Bound<'_, PyAny>>,
    f: &Bound<'_, PyAny>,
    effect_of_name: impl FnOnce(&str) -> Effect,
) -> Effect {
    if let Some(e) = CACHE.with(|c| c.borrow().get(&key).map(|(_, e)| *e)) {
        return e;
    }
    let effect = effect_of_name(&name_of(f));
    let dropped = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let old = (c.len() >= MAX_CACHED).then(|| std::mem::take(&mut *c));
        c.insert(key, (keep.map(|k| k.clone().unbind()), effect));
        old
    });
    drop(dropped);
    effect
}

/// Number of cached callees on this thread (for the bounded-cache test).
pub fn cached_count() -> usize {
    CACHE.with(|c| c.borrow().len())
}

/// CPython's `PyMethodObject` (a bound Python method), the same in
/// 3.10–3.13; pyo3 does not export it.
#[repr(C)]
struct MethodObject {
    ob_base: ffi::PyObject,
    im_func: *mut ffi::PyObject,
    im_self: *mut ffi::PyObject,
}

/// The address of `types.MethodType`.
fn method_type(py: Python<'_>) -> usize {
    static TYPE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *TYPE.get_or_init(|| {
        py.import("types")
            .and_then(|t| t.getattr("MethodType"))
            .map_or(0, |t| t.as_ptr() as usize)
    })
}

/// Resolve `f`, the object a call instruction is about to call.
pub fn resolve(f: &Bound<'_, PyAny>) -> Callee {
    let p = f.as_ptr();
    let py = f.py();
    // SAFETY: `p` is alive (borrowed from a `Bound`), GIL held; type checks
    // and reads of fields of the checked types only.
    unsafe {
        if ffi::PyFunction_Check(p) != 0 {
            let code = ffi::PyFunction_GetCode(p);
            let code = Bound::from_borrowed_ptr(py, code);
            let globals = Bound::from_borrowed_ptr(py, ffi::PyFunction_GetGlobals(p));
            if code::info_in(py, &code, Some(&globals)).is_ok_and(|i| i.traced) {
                return Callee::Traced;
            }
            return Callee::Opaque {
                effect: cached_as(p as usize, Some(f), f, |name| {
                    python_effect_named(name, stdlib_code(&code))
                }),
                bound: None,
            };
        }
        if ffi::Py_TYPE(p) as usize == method_type(py) {
            let m = p.cast::<MethodObject>();
            let func = Bound::from_borrowed_ptr(py, (*m).im_func);
            let this = (*m).im_self;
            return match resolve(&func) {
                Callee::Traced => Callee::Traced,
                Callee::Opaque { effect, .. } => Callee::Opaque {
                    effect,
                    bound: (!this.is_null()).then_some(this),
                },
            };
        }
        if ffi::PyCFunction_Check(p) != 0 {
            let cf = p.cast::<ffi::PyCFunctionObject>();
            let this = (*cf).m_self;
            let bound = (!this.is_null() && ffi::PyModule_Check(this) == 0).then_some(this);
            return Callee::Opaque {
                effect: cached((*cf).m_ml as usize, None, f),
                bound,
            };
        }
        let ty = ffi::Py_TYPE(p);
        if ffi::PyType_Check(p) != 0 {
            if ffi::PyType_HasFeature(p.cast(), ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
                // A class: its `__init__` runs, traced or not.
                return match f.getattr("__init__") {
                    Ok(init) if ffi::PyFunction_Check(init.as_ptr()) != 0 => match resolve(&init) {
                        Callee::Opaque { effect, .. } => Callee::Opaque {
                            effect: match effect {
                                // Known by its class's name, not `__init__`'s.
                                Effect::Untraced => cached_as(p as usize, Some(f), f, |name| {
                                    python_effect_named(name, true)
                                }),
                                e => e,
                            },
                            bound: None,
                        },
                        Callee::Traced => Callee::Traced,
                    },
                    _ => Callee::Traced,
                };
            }
            return Callee::Opaque {
                effect: cached(p as usize, Some(f), f),
                bound: None,
            };
        }
        if ty == &raw mut ffi::PyMethodDescr_Type || ty == &raw mut ffi::PyWrapperDescr_Type {
            return Callee::Opaque {
                effect: cached(p as usize, Some(f), f),
                bound: None,
            };
        }
        if (*ty).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE != 0 {
            // An instance with a Python `__call__`: traced.
            return Callee::Traced;
        }
        // Method wrappers, partials, ufuncs…: not cached (often transient).
        let bound = f.getattr("__self__").ok().and_then(|s| {
            let s = s.as_ptr();
            (ffi::PyModule_Check(s) == 0 && ffi::PyType_Check(s) == 0).then_some(s)
        });
        // The borrowed `__self__` pointer stays alive: `f` holds it.
        Callee::Opaque {
            effect: effect_named(&name_of(f)),
            bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untraced_standard_library_code_not_in_the_table() {
        assert_eq!(
            python_effect_named("statistics.mean", true),
            Effect::Untraced
        );
        assert_eq!(
            python_effect_named("collections.Counter.subtract", true),
            Effect::Untraced
        );
        // Described by the table, or not the standard library's.
        assert_eq!(python_effect_named("copy.copy", true), Effect::Read);
        assert_eq!(python_effect_named("threading.Thread", true), Effect::Pure);
        // An untraced package's code (not the standard library's).
        assert_eq!(
            python_effect_named("sqlalchemy.sql._selectable_constructors.select", false),
            Effect::Package
        );
        assert_eq!(
            python_effect_named("frontrun._coop._sleep", true),
            Effect::Pure
        );
    }
}
