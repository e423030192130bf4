//! Which objects are shared, and their ids, stable across executions.
//!
//! `setup()` rebuilds the state every execution, so addresses change; DPOR
//! compares events across executions, so ids must not. An id is derived from
//! the *path* by which the object was first reached: root number, then the
//! attribute name / item key of each step (`mix(parent, key)`). Module global
//! dicts take their id from the module name, closure cells from the variable
//! name, primitives registered by the driver from registration order.
//!
//! Shared = registered. The roots are walked (breadth first, depth and size
//! limited); objects met later are registered when they are loaded from or
//! stored into a registered object (attribute, item, global, closure cell),
//! produced by iterating a registered container, returned by a method of
//! one, or passed to one of its mutators (`append`, `update`…). Everything
//! else is thread-private and produces no events. Immutable objects (numbers, strings, bytes, tuples, frozensets,
//! functions, code, builtin types, modules) are never owners: tuples and
//! frozensets are walked *through*, modules map to their globals dict.
//!
//! Strong references are held until [`end_execution`] so addresses are not
//! reused mid-execution. Set items are keyed by content when hashable by
//! content, otherwise by iteration position, which may differ between
//! executions for identity-hashed elements (a known imprecision).

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use frontrun_engine::event::ObjId;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

use super::keys::{attr_key, fnv_tagged, index_key, item_key, mix, FastMap};
use super::library;
use super::share::{self, kind, ShareKind};

const MAX_DEPTH: usize = 6;
const MAX_NODES: usize = 4096;

#[derive(Default)]
struct Registry {
    by_addr: FastMap<usize, (ObjId, ShareKind)>,
    taken: FastMap<ObjId, usize>,
    refs: Vec<Py<PyAny>>,
    roots: u64,
    prims: u64,
    /// Kept after an execution ends, for explanations; overwritten when an id
    /// is reused, cleared beyond [`MAX_TYPE_NAMES`].
    type_names: FastMap<ObjId, String>,
    /// Iterators and views over shared containers (by address): the
    /// containers each step of them reads.
    derived: FastMap<usize, Vec<ObjId>>,
}

/// Beyond this many remembered type names, the oldest execution's are
/// forgotten (explanations then name the object by id).
pub const MAX_TYPE_NAMES: usize = 1 << 14;

impl Registry {
    /// The first free id in the sequence `base, mix(base, 1), mix(base, 2)…`.
    fn claim(&self, base: ObjId) -> ObjId {
        let mut id = base;
        let mut n = 0u64;
        while self.taken.contains_key(&id) {
            n += 1;
            id = mix(base, n);
        }
        id
    }

    /// `type_name` and `kind` are computed by the caller before taking the
    /// lock: the lock is never held while Python code might run.
    fn insert(&mut self, obj: &Bound<'_, PyAny>, id: ObjId, kind: ShareKind, type_name: String) {
        let addr = obj.as_ptr() as usize;
        self.by_addr.insert(addr, (id, kind));
        self.taken.insert(id, addr);
        self.refs.push(obj.clone().unbind());
        self.type_names.insert(id, type_name);
    }
}

static REG: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn reg() -> std::sync::MutexGuard<'static, Registry> {
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

const ROOT_TAG: u8 = b'R';
const PRIM_TAG: u8 = b'P';
const MODULE_TAG: u8 = b'M';
const CELL_TAG: u8 = b'C';

fn type_name_of(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(t) = obj.downcast::<PyType>() {
        return t
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "type".into());
    }
    let ty = obj.get_type();
    let name = ty
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into());
    user_facing_name(&ty, name)
}

/// frontrun's cooperative stand-ins are named after the primitive the user
/// created (`threading.Lock()` gives a `CoopLock`): traces and explanations
/// show the user's name, never frontrun's internal one.
fn user_facing_name(ty: &Bound<'_, PyType>, name: String) -> String {
    let internal = name.starts_with("Coop")
        && ty
            .getattr(pyo3::intern!(ty.py(), "__module__"))
            .and_then(|m| m.extract::<String>())
            .is_ok_and(|m| m == "frontrun._native");
    if !internal {
        return name;
    }
    match name.as_str() {
        "CoopLock" => "Lock".into(),
        "CoopCondition" => "Condition".into(),
        other => other.trim_start_matches("Coop").into(),
    }
}

/// Start an execution: forget every object of the previous one.
pub fn begin_execution(py: Python<'_>) {
    share::ensure_init(py);
    end_execution(py);
}

/// Release the references of the execution and forget its objects.
pub fn end_execution(_py: Python<'_>) {
    let refs = {
        let mut r = reg();
        r.by_addr.clear();
        r.taken.clear();
        r.derived.clear();
        if r.type_names.len() > MAX_TYPE_NAMES {
            r.type_names.clear();
        }
        r.roots = 0;
        r.prims = 0;
        std::mem::take(&mut r.refs)
    };
    // Dropped with the GIL held (the token proves it), outside the lock:
    // finalizers may run Python code.
    drop(refs);
}

/// Register the `n`-th root of this execution and everything reachable from
/// it (within limits). Returns its id.
pub fn add_root(py: Python<'_>, obj: &Bound<'_, PyAny>) -> ObjId {
    share::ensure_init(py);
    let base = {
        let mut r = reg();
        r.roots += 1;
        fnv_tagged(ROOT_TAG, &r.roots.to_le_bytes())
    };
    adopt_with_base(py, base, obj).unwrap_or(base)
}

/// The id of `obj`, registering it (without walking) if new: for locks and
/// other primitives the driver models itself.
pub fn id_of(py: Python<'_>, obj: &Bound<'_, PyAny>) -> ObjId {
    share::ensure_init(py);
    if let Some(id) = lookup(obj.as_ptr()) {
        return id;
    }
    let (k, name) = (kind(obj), type_name_of(obj));
    let mut r = reg();
    r.prims += 1;
    let id = r.claim(fnv_tagged(PRIM_TAG, &r.prims.to_le_bytes()));
    r.insert(obj, id, k, name);
    id
}

/// The id of a registered object, by address.
pub fn lookup(obj: *mut ffi::PyObject) -> Option<ObjId> {
    lookup_kind(obj).map(|(id, _)| id)
}

/// The id and kind of a registered object, by address.
pub fn lookup_kind(obj: *mut ffi::PyObject) -> Option<(ObjId, ShareKind)> {
    if let Some(found) = reg().by_addr.get(&(obj as usize)).copied() {
        return Some(found);
    }
    // A `weakref.proxy` forwards attribute access, subscripts and operators
    // to its referent in C code: an access through it is one to the referent.
    let target = proxy_referent(obj)?;
    reg().by_addr.get(&(target as usize)).copied()
}

/// The live referent of a `weakref.proxy`, or `None` (not a proxy, or dead).
fn proxy_referent(obj: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    // SAFETY: live object, GIL held. `PyWeakref_GetObject` returns a borrowed
    // reference (None once dead); only its address is used, as a key.
    unsafe {
        if ffi::PyWeakref_CheckProxy(obj) == 0 {
            return None;
        }
        #[allow(deprecated)]
        let target = ffi::PyWeakref_GetObject(obj);
        (!target.is_null() && target != ffi::Py_None()).then_some(target)
    }
}

/// `obj` (an iterator or view) reads `parents` at each step: remember it
/// (holding it, so its address is not reused) until the execution ends.
pub fn derive(obj: &Bound<'_, PyAny>, parents: &[ObjId]) {
    if parents.is_empty() {
        return;
    }
    let mut r = reg();
    r.derived
        .entry(obj.as_ptr() as usize)
        .or_default()
        .extend_from_slice(parents);
    r.refs.push(obj.clone().unbind());
}

/// The containers an iterator or view registered with [`derive`] reads.
pub fn derived(obj: *mut ffi::PyObject) -> Option<Vec<ObjId>> {
    reg().derived.get(&(obj as usize)).cloned()
}

/// `obj` is another view of shared `id`'s state (`vars(o)`, `o.__dict__`,
/// a `memoryview`): accesses through it are accesses to `id`.
pub fn alias(obj: &Bound<'_, PyAny>, id: ObjId, kind: ShareKind) {
    let mut r = reg();
    let addr = obj.as_ptr() as usize;
    if r.by_addr.contains_key(&addr) {
        return;
    }
    r.by_addr.insert(addr, (id, kind));
    r.refs.push(obj.clone().unbind());
}

/// Number of remembered type names (for the bounded-cache test).
pub fn type_name_count() -> usize {
    reg().type_names.len()
}

/// The type name recorded for `id` (for explanations).
pub fn type_name(id: ObjId) -> Option<String> {
    reg().type_names.get(&id).cloned()
}

/// `obj` was loaded from, or stored into, `parent` under `key`: share it
/// (and what it reaches) unless already shared or immutable.
pub fn adopt(py: Python<'_>, parent: ObjId, key: u64, obj: &Bound<'_, PyAny>) -> Option<ObjId> {
    adopt_with_base(py, mix(parent, key), obj)
}

fn adopt_with_base(py: Python<'_>, base: ObjId, obj: &Bound<'_, PyAny>) -> Option<ObjId> {
    let k = kind(obj);
    if k == ShareKind::Immutable {
        return None;
    }
    if let Some(id) = lookup(obj.as_ptr()) {
        return Some(id);
    }
    let library = k != ShareKind::Transparent && shared_library_object(obj);
    let id = match k {
        ShareKind::Immutable => return None,
        ShareKind::Transparent => None,
        ShareKind::Container | ShareKind::Object => {
            let name = type_name_of(obj);
            let mut r = reg();
            let id = r.claim(base);
            r.insert(obj, id, k, name);
            Some(id)
        }
    };
    if !library {
        walk(py, id.unwrap_or(base), obj);
    }
    id
}

/// Whether `obj` belongs to an untraced package (recording it if its
/// sharing is not accounted for, see `library`). Its internals are the
/// library's: they are not walked (the user's code registers what it loads
/// from it, as usual).
fn shared_library_object(obj: &Bound<'_, PyAny>) -> bool {
    match library::owner(obj) {
        library::Owner::Traced => false,
        library::Owner::Accounted => true,
        library::Owner::Hidden(name) => {
            library::note_shared(&name);
            true
        }
    }
}

/// The id of a module's globals dict (registering it on first use).
pub fn module_globals(py: Python<'_>, globals: &Bound<'_, PyAny>) -> ObjId {
    if let Some(id) = lookup(globals.as_ptr()) {
        return id;
    }
    let name = globals
        .downcast::<PyDict>()
        .ok()
        .and_then(|d| d.get_item("__name__").ok().flatten())
        .and_then(|n| n.extract::<String>().ok())
        .unwrap_or_else(|| "<globals>".into());
    let _ = py;
    let mut r = reg();
    let id = r.claim(fnv_tagged(MODULE_TAG, name.as_bytes()));
    r.insert(globals, id, ShareKind::Object, name);
    id
}

/// The id of a closure cell for variable `name` (registering it if new).
pub fn cell(cell: &Bound<'_, PyAny>, name_key: u64) -> ObjId {
    let mut r = reg();
    if let Some(&(id, _)) = r.by_addr.get(&(cell.as_ptr() as usize)) {
        return id;
    }
    let id = r.claim(mix(fnv_tagged(CELL_TAG, &[]), name_key));
    r.insert(cell, id, ShareKind::Object, "closure".into());
    id
}

/// The children of `obj` with their path keys. Runs Python (`__dict__`
/// lookups, iteration) without the registry lock held.
fn children<'py>(obj: &Bound<'py, PyAny>) -> Vec<(u64, Bound<'py, PyAny>)> {
    let mut out = Vec::new();
    let positional = |i: usize| fnv_tagged(b'n', &(i as u64).to_le_bytes());
    if let Ok(d) = obj.downcast::<PyDict>() {
        for (i, (k, v)) in d.iter().enumerate() {
            let key = item_key(&k).map_or_else(|| positional(i), |k| k.hash);
            out.push((key, v));
        }
        return out;
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        out.extend(l.iter().enumerate().map(|(i, v)| (index_key(i as i64), v)));
        return out;
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        out.extend(t.iter().enumerate().map(|(i, v)| (index_key(i as i64), v)));
        return out;
    }
    let k = kind(obj);
    if share::is_cell(obj) {
        if let Ok(v) = obj.getattr("cell_contents") {
            out.push((attr_key("cell_contents"), v));
        }
        return out;
    }
    if k == ShareKind::Container || k == ShareKind::Transparent {
        // deque, set, frozenset, bytearray: by position, or content for sets.
        let is_set = obj.is_instance_of::<pyo3::types::PySet>()
            || obj.is_instance_of::<pyo3::types::PyFrozenSet>();
        if let Ok(it) = obj.try_iter() {
            for (i, v) in it.flatten().enumerate() {
                let key = if is_set {
                    item_key(&v).map_or_else(|| positional(i), |k| k.hash)
                } else {
                    index_key(i as i64)
                };
                out.push((key, v));
            }
        }
        return out;
    }
    if k == ShareKind::Object {
        // Instances: the dict itself, not `obj.__dict__`, so a custom
        // `__getattribute__` never runs during a walk.
        let d = if obj.downcast::<PyType>().is_ok() {
            obj.getattr("__dict__").ok()
        } else {
            super::share::instance_dict(obj)
        };
        if let Some(d) = d {
            if let Ok(items) = d.call_method0("items").and_then(|i| i.try_iter()) {
                for (name, v) in items.flatten().filter_map(|kv| {
                    kv.extract::<(Bound<'py, PyString>, Bound<'py, PyAny>)>()
                        .ok()
                }) {
                    if let Ok(n) = name.to_str() {
                        out.push((attr_key(n), v));
                    }
                }
            }
        }
        if obj.downcast::<PyType>().is_err() {
            out.extend(slot_values(obj));
        }
    }
    out
}

/// Values of `__slots__` declared along the MRO.
fn slot_values<'py>(obj: &Bound<'py, PyAny>) -> Vec<(u64, Bound<'py, PyAny>)> {
    let mut out = Vec::new();
    let Ok(mro) = obj.get_type().getattr("__mro__") else {
        return out;
    };
    let Ok(mro) = mro.try_iter() else { return out };
    for cls in mro.flatten() {
        let Ok(slots) = cls
            .getattr("__dict__")
            .and_then(|d| d.get_item("__slots__"))
        else {
            continue;
        };
        let names: Vec<String> = if let Ok(s) = slots.extract::<String>() {
            vec![s]
        } else {
            slots.extract().unwrap_or_default()
        };
        for n in names {
            if n == "__dict__" || n == "__weakref__" {
                continue;
            }
            // Through the slot's member descriptor: no `__getattribute__`.
            let value = cls
                .getattr("__dict__")
                .and_then(|d| d.get_item(n.as_str()))
                .and_then(|descr| descr.call_method1("__get__", (obj, obj.get_type())));
            if let Ok(v) = value {
                out.push((attr_key(&n), v));
            }
        }
    }
    out
}

/// Breadth-first registration of what `obj` (with id or path `id`) reaches.
fn walk(_py: Python<'_>, id: ObjId, obj: &Bound<'_, PyAny>) {
    let mut queue = VecDeque::from([(id, obj.clone(), 0usize)]);
    let mut seen = 0usize;
    while let Some((pid, node, depth)) = queue.pop_front() {
        if depth >= MAX_DEPTH || seen >= MAX_NODES {
            break;
        }
        for (key, child) in children(&node) {
            seen += 1;
            let base = mix(pid, key);
            match kind(&child) {
                ShareKind::Immutable => {}
                ShareKind::Transparent => queue.push_back((base, child, depth + 1)),
                k @ (ShareKind::Container | ShareKind::Object) => {
                    if lookup(child.as_ptr()).is_some() {
                        continue;
                    }
                    let name = type_name_of(&child);
                    let library = shared_library_object(&child);
                    let mut r = reg();
                    let cid = r.claim(base);
                    r.insert(&child, cid, k, name);
                    drop(r);
                    if !library {
                        queue.push_back((cid, child, depth + 1));
                    }
                }
            }
        }
    }
}
