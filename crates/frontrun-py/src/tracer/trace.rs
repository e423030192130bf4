//! The C-level trace function: opcode → access → `hooks::emit`.
//!
//! No Python code runs per access: the path is Rust reading the frame, a
//! registry lookup, and the sink. Python runs only on first sight of a code
//! object (cache fill) and when a newly shared object graph is walked.

use std::cell::RefCell;
use std::os::raw::c_int;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use frontrun_engine::event::{Access, Event, Key, ObjId};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::callee::{self, Callee};
use super::code::{self, CodeInfo};
use super::decode::Instr;
use super::describe;
use super::interp;
use super::interp::frame::{FrameView, Stack, StackDepth};
use super::key_text::{self, KeyText};
use super::keys::{fnv_tagged, index_key, item_key, mix, unkeyed, FastMap};
use super::opaque::{self, Effect};
use super::ops::{MethodUse, Opcode};
use super::registry;
use super::share::{self, ShareKind};
use crate::hooks;

/// Something an instruction is about to push: at the next opcode event of
/// the same frame, if it is at `unit`, the value is on top of the stack.
struct Pending {
    frame: usize,
    code: usize,
    unit: u32,
    then: Then,
}

/// What to do with the pushed value.
enum Then {
    /// Register it as `parent`'s child under `key`. `slots`: how many slots
    /// the load pushed (a NULL may accompany the value).
    Adopt { parent: ObjId, key: u64, slots: u8 },
    /// It is an iterator over shared `parents`: its items are shared, and
    /// each of its steps reads them.
    Iterator { parents: Vec<ObjId> },
    /// It is an iterator or view produced by opaque code from `parents`
    /// (`enumerate(l)`, `d.items()`): iterating it reads them.
    Derived { parents: Vec<ObjId> },
    /// It is another view of `parent`'s state (`vars(o)`, `memoryview(b)`).
    Alias { parent: ObjId, kind: ShareKind },
}

/// A method of a shared container loaded and not yet called.
struct MethodLoad {
    frame: usize,
    container: usize,
    parent: ObjId,
    name: u64,
    use_: MethodUse,
}

/// An iterator over a shared container, alive in `frame`.
struct SharedIter {
    frame: usize,
    /// Held so its address is not reused while tracked.
    iter: Py<PyAny>,
    /// The containers each step reads; items are adopted from the first.
    parents: Vec<ObjId>,
    next: i64,
}

/// Bound on each follow-up list: beyond it the oldest entries are dropped
/// (a missed follow-up only loses precision, never safety).
const MAX_FOLLOW: usize = 32;

fn push_bounded<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= MAX_FOLLOW {
        v.remove(0);
    }
    v.push(item);
}

#[derive(Default)]
struct ThreadState {
    last: Option<(usize, Arc<CodeInfo>)>,
    /// Per-thread view of the global code cache (which keeps the code
    /// objects alive, so addresses here are never reused).
    codes: FastMap<usize, Arc<CodeInfo>>,
    pending: Vec<Pending>,
    methods: Vec<MethodLoad>,
    iters: Vec<SharedIter>,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::default();
}

/// Number of code objects in this thread's view of the code cache.
pub fn thread_cached_count() -> usize {
    STATE.with(|s| s.borrow().codes.len())
}

thread_local! {
    /// Trace callbacks of this thread in progress (0 or 1: CPython does
    /// not trace inside its trace function).
    static IN_CALLBACK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One greenlet's tracer state, set aside while another runs.
pub struct SavedThread {
    state: ThreadState,
    /// The greenlet left from inside a trace callback.
    in_callback: u32,
}

/// Take the calling greenlet's tracer state out (leaving a fresh one),
/// before it switches away.
///
/// A greenlet that parks inside the trace callback (an access it reported
/// must wait for its turn) would otherwise leave the interpreter in its
/// "tracing" state (set for the length of a callback, so the trace function
/// is not traced itself) for every greenlet resumed meanwhile: none of them
/// would be traced. That state is left here and entered again by
/// `restore_thread` when the greenlet resumes.
pub fn save_thread() -> SavedThread {
    let in_callback = IN_CALLBACK.with(|c| c.replace(0));
    for _ in 0..in_callback {
        interp::leave_tracing();
    }
    SavedThread {
        state: STATE.with(|s| std::mem::take(&mut *s.borrow_mut())),
        in_callback,
    }
}

/// Put back a state taken by `save_thread`, once the greenlet resumed.
pub fn restore_thread(saved: SavedThread) {
    STATE.with(|s| *s.borrow_mut() = saved.state);
    for _ in 0..saved.in_callback {
        interp::enter_tracing();
    }
    IN_CALLBACK.with(|c| c.set(saved.in_callback));
}

/// Forget this thread's cached code and pending loads.
pub fn reset_thread() {
    STATE.with(|s| *s.borrow_mut() = ThreadState::default());
}

/// Installed with `PyEval_SetTrace`.
///
/// # Safety
/// Called by CPython with the GIL held and a live `frame`.
pub unsafe extern "C" fn trace(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    if !matches!(
        what,
        ffi::PyTrace_CALL | ffi::PyTrace_OPCODE | ffi::PyTrace_RETURN
    ) || frame.is_null()
    {
        return 0;
    }
    // Opcode events check for a sink after their (cheaper) idle fast path;
    // return events always clean up the frame's follow-ups.
    if what == ffi::PyTrace_CALL && !hooks::has_sink() {
        return 0;
    }
    // SAFETY: CPython calls trace functions with the GIL held.
    let py = unsafe { Python::assume_gil_acquired() };
    // SAFETY: `frame` is the live frame of this event, and the view does not
    // escape this call.
    let view = unsafe { FrameView::new(frame) };
    IN_CALLBACK.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| match what {
        ffi::PyTrace_CALL => on_call(py, &view),
        ffi::PyTrace_OPCODE => on_opcode(py, &view, frame as usize),
        _ => {
            on_return(py, &view, frame as usize);
            Ok(())
        }
    }));
    IN_CALLBACK.with(|c| c.set(c.get().saturating_sub(1)));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            e.restore(py);
            -1
        }
        Err(_) => {
            PyRuntimeError::new_err("frontrun tracer: internal panic while tracing").restore(py);
            -1
        }
    }
}

/// A frame returns: forget its follow-ups, unless it is a generator or
/// coroutine suspending at a yield (its entries stay, bounded, and match only
/// this frame and code object).
fn on_return(py: Python<'_>, view: &FrameView, f: usize) {
    let busy = STATE.with(|s| {
        let s = s.borrow();
        s.pending.iter().any(|p| p.frame == f)
            || s.methods.iter().any(|m| m.frame == f)
            || s.iters.iter().any(|i| i.frame == f)
    });
    if !busy || code_info(py, view).is_ok_and(|info| info.suspends) {
        return;
    }
    let dropped = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.pending.retain(|p| p.frame != f);
        s.methods.retain(|m| m.frame != f);
        let (gone, kept) = std::mem::take(&mut s.iters)
            .into_iter()
            .partition(|i| i.frame == f);
        s.iters = kept;
        gone
    });
    // Released outside the borrow: dropping may run finalizers.
    drop::<Vec<SharedIter>>(dropped);
}

fn code_info(py: Python<'_>, view: &FrameView) -> PyResult<Arc<CodeInfo>> {
    let code = view.code() as usize;
    let hit = STATE.with(|s| {
        let mut s = s.borrow_mut();
        if let Some((c, i)) = &s.last {
            if *c == code {
                return Some(i.clone());
            }
        }
        let found = s.codes.get(&code).cloned()?;
        s.last = Some((code, found.clone()));
        Some(found)
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    // SAFETY: the frame holds a strong reference to its code object and
    // to its globals.
    let (bound, globals) = unsafe {
        (
            Bound::from_borrowed_ptr(py, code as *mut ffi::PyObject),
            Bound::from_borrowed_ptr(py, view.globals()),
        )
    };
    let info = code::info_in(py, &bound, Some(&globals))?;
    let dropped = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let old = (s.codes.len() >= code::MAX_CODES).then(|| std::mem::take(&mut s.codes));
        s.codes.insert(code, info.clone());
        s.last = Some((code, info.clone()));
        old
    });
    drop(dropped);
    Ok(info)
}

fn on_call(py: Python<'_>, view: &FrameView) -> PyResult<()> {
    let info = code_info(py, view)?;
    // Line events are not needed: opcodes are enough.
    if interp::OPCODES_VIA_SETTER {
        view.write_trace_flags(false, None);
        if info.traced {
            // 3.13 instruments the code for opcode events in the
            // `f_trace_opcodes` setter, and only if `f_trace` is set; it is
            // put back at once so the program does not see it.
            let on = view.with_f_trace(py, || {
                view.set_flag(pyo3::intern!(py, "f_trace_opcodes"), true)
            });
            if !on {
                return Err(PyErr::take(py)
                    .unwrap_or_else(|| PyRuntimeError::new_err("cannot enable opcode tracing")));
            }
        }
    } else {
        view.write_trace_flags(false, Some(info.traced));
    }
    Ok(())
}

fn on_opcode(py: Python<'_>, view: &FrameView, frame: usize) -> PyResult<()> {
    let Some(unit) = view.unit() else {
        return Ok(());
    };
    let code = view.code() as usize;
    // Fast path, one thread-local access: same code object as last time, an
    // instruction that touches nothing, no load to follow up.
    let cached = STATE.with(|s| {
        let s = s.borrow();
        match &s.last {
            Some((c, info)) if *c == code => {
                let idle = info.instrs.get(unit).is_none_or(|i| match i.op {
                    Opcode::Skip => true,
                    Opcode::ForIter => s.iters.is_empty(),
                    // A call passing only numbers, strings and functions
                    // hands nothing shared to anyone.
                    Opcode::Call | Opcode::CallFunction | Opcode::CallKw
                        if s.methods.is_empty() =>
                    {
                        stack_of(view, info, unit).is_some_and(|stack| {
                            (1..=i.arg + 2)
                                .all(|slot| stack.peek(slot).is_none_or(|p| !maybe_holds_shared(p)))
                        })
                    }
                    // Operators on numbers and strings, the common case,
                    // are settled here without leaving the fast path.
                    _ => operand_slots(*i).is_some_and(|(reads, write)| {
                        let deep = reads_held(i.op);
                        stack_of(view, info, unit).is_some_and(|stack| {
                            reads.iter().chain(write.iter()).all(|&slot| {
                                stack.peek(slot).is_none_or(|p| {
                                    !(if deep {
                                        maybe_holds_shared(p)
                                    } else {
                                        maybe_shared(p)
                                    })
                                })
                            })
                        })
                    }),
                });
                if !info.traced || (idle && s.pending.is_empty()) {
                    Err(())
                } else {
                    Ok(Some(info.clone()))
                }
            }
            _ => Ok(None),
        }
    });
    if matches!(cached, Err(())) || !hooks::has_sink() {
        return Ok(());
    }
    let info = match cached {
        Ok(Some(info)) => info,
        _ => code_info(py, view)?,
    };
    if !info.traced {
        return Ok(());
    }
    let Some(&ins) = info.instrs.get(unit) else {
        return Ok(());
    };
    let stack = || stack_of(view, &info, unit);
    let code = view.code() as usize;
    resolve_pending(py, frame, code, unit, &stack);
    if ins.op == Opcode::Skip {
        return Ok(());
    }
    let Some(stack) = stack() else { return Ok(()) };
    let (access, then) = classify(py, view, &info, ins, &stack, frame);
    if let Some(then) = then {
        let p = Pending {
            frame,
            code,
            unit: ins.next,
            then,
        };
        STATE.with(|s| push_bounded(&mut s.borrow_mut().pending, p));
    }
    if access.is_empty() {
        return Ok(());
    }
    let site = site_of(py, &info, unit);
    // An access inside an installed package's code (traced, not the
    // user's) is explained at the user's line that led to it.
    let loc = (!info.user).then(|| super::user_loc(py)).flatten();
    hooks::emit_at(
        py,
        Event {
            accesses: access,
            site,
        },
        loc,
    )
}

/// The live value stack of `view` before code unit `unit`.
fn stack_of(view: &FrameView, info: &CodeInfo, unit: usize) -> Option<Stack> {
    let depth = if interp::STATIC_STACK_DEPTH {
        StackDepth::Known(info.depths.get(unit).and_then(|&d| u32::try_from(d).ok()))
    } else {
        StackDepth::Live
    };
    view.stack(depth, info.nlocalsplus, info.stacksize)
}

fn site_of(py: Python<'_>, info: &CodeInfo, unit: usize) -> u64 {
    let cell = &info.sites[unit];
    match cell.load(Ordering::Relaxed) {
        0 => {
            let id = describe::new_site(
                info.code.clone_ref(py),
                u32::try_from(unit * 2).unwrap_or(u32::MAX),
            );
            cell.store(id, Ordering::Relaxed);
            id
        }
        id => id,
    }
}

/// Register the value produced by a load from a shared place.
fn resolve_pending(
    py: Python<'_>,
    frame: usize,
    code: usize,
    unit: usize,
    stack: &dyn Fn() -> Option<Stack>,
) {
    let mine = STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.pending.is_empty() {
            return None;
        }
        let pos = s.pending.iter().rposition(|p| p.frame == frame)?;
        let p = s.pending.remove(pos);
        s.pending.retain(|q| q.frame != frame);
        Some(p)
    });
    let Some(p) = mine else { return };
    if p.unit as usize != unit || p.code != code {
        return; // the load raised or jumped: nothing was pushed
    }
    let Some(stack) = stack() else { return };
    match p.then {
        Then::Adopt { parent, key, slots } => {
            let values: Vec<_> = (1..=u32::from(slots))
                .filter_map(|i| stack.peek(i))
                .collect();
            if let [value] = values[..] {
                // SAFETY: a live stack value; the frame holds the reference.
                let value = unsafe { Bound::from_borrowed_ptr(py, value) };
                registry::adopt(py, parent, key, &value);
            }
        }
        Then::Iterator { parents } => {
            if let Some(it) = peek(py, &stack, 1) {
                track_iter(frame, &it, parents);
            }
        }
        Then::Derived { parents } => {
            if let Some(it) = peek(py, &stack, 1) {
                registry::derive(&it, &parents);
                // SAFETY: live object, GIL held; a type check only.
                if unsafe { ffi::PyIter_Check(it.as_ptr()) } != 0 {
                    track_iter(frame, &it, parents);
                }
            }
        }
        Then::Alias { parent, kind } => {
            if let Some(v) = peek(py, &stack, 1) {
                registry::alias(&v, parent, kind);
            }
        }
    }
}

/// Follow the steps of iterator `it` over shared `parents`.
fn track_iter(frame: usize, it: &Bound<'_, PyAny>, parents: Vec<ObjId>) {
    let entry = SharedIter {
        frame,
        iter: it.clone().unbind(),
        parents,
        next: 0,
    };
    STATE.with(|s| push_bounded(&mut s.borrow_mut().iters, entry));
}

/// Borrow a stack slot as a `Bound`.
fn peek<'py>(py: Python<'py>, stack: &Stack, i: u32) -> Option<Bound<'py, PyAny>> {
    // SAFETY: `peek` only yields non-NULL pointers to live values in the
    // frame's stack, which holds a reference for this whole call.
    stack
        .peek(i)
        .map(|p| unsafe { Bound::from_borrowed_ptr(py, p) })
}

/// A shared owner: its id and kind. A module stands for its globals dict
/// (shared from first use: any thread may import it).
fn owner(obj: &Bound<'_, PyAny>) -> Option<(ObjId, ShareKind)> {
    if let Some(found) = registry::lookup_kind(obj.as_ptr()) {
        return Some(found);
    }
    module_dict(obj).map(|d| (registry::module_globals(obj.py(), &d), ShareKind::Object))
}

/// The globals dict of `obj` if it is a module.
fn module_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    // SAFETY: live object, GIL held.
    if unsafe { ffi::PyModule_Check(obj.as_ptr()) } == 0 {
        return None;
    }
    // SAFETY: a module; returns its borrowed dict (or NULL).
    let d = unsafe { ffi::PyModule_GetDict(obj.as_ptr()) };
    // SAFETY: the module holds its dict.
    (!d.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(obj.py(), d) })
}

/// Whether `p` may be a shared object or a view of one: a cheap type test
/// that rules out the common immutable values without taking the registry
/// lock.
fn maybe_shared(p: *mut ffi::PyObject) -> bool {
    // SAFETY: `p` is a live stack value, GIL held; type flags only.
    unsafe {
        let flags = (*ffi::Py_TYPE(p)).tp_flags;
        let immutable = ffi::Py_TPFLAGS_LONG_SUBCLASS
            | ffi::Py_TPFLAGS_UNICODE_SUBCLASS
            | ffi::Py_TPFLAGS_BYTES_SUBCLASS
            | ffi::Py_TPFLAGS_TUPLE_SUBCLASS;
        flags & immutable == 0
            && p != ffi::Py_None()
            && ffi::PyFloat_CheckExact(p) == 0
            && ffi::PyFunction_Check(p) == 0
    }
}

/// Whether a value handed to C code may carry shared state: `maybe_shared`,
/// or a tuple holding such a value (`str((a.l,))`, `sorted((a.l, b.l))`).
fn maybe_holds_shared(p: *mut ffi::PyObject) -> bool {
    if maybe_shared(p) {
        return true;
    }
    // SAFETY: a live value, GIL held; a tuple's items are live while it is.
    unsafe {
        ffi::PyTuple_CheckExact(p) != 0
            && (0..ffi::PyTuple_GET_SIZE(p)).any(|i| maybe_shared(ffi::PyTuple_GET_ITEM(p, i)))
    }
}

/// The shared objects a builtin container (tuple, list, dict, set) holds
/// directly, which C code reading the container reads too: comparing,
/// summing, formatting or serialising it reaches them. One level deep.
fn held_owners(obj: &Bound<'_, PyAny>) -> Vec<ObjId> {
    use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyTuple};
    let mut out = Vec::new();
    let mut visit = |item: Bound<'_, PyAny>| {
        for id in whole_owners(&item) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    };
    // Holding the GIL and running no Python code, nothing changes the
    // container while it is walked.
    if let Ok(t) = obj.downcast_exact::<PyTuple>() {
        t.iter().for_each(&mut visit);
    } else if let Ok(l) = obj.downcast_exact::<PyList>() {
        l.iter().for_each(&mut visit);
    } else if let Ok(d) = obj.downcast_exact::<PyDict>() {
        for (k, v) in d.iter() {
            visit(k);
            visit(v);
        }
    } else if let Ok(s) = obj.downcast_exact::<PySet>() {
        s.iter().for_each(&mut visit);
    } else if let Ok(s) = obj.downcast_exact::<PyFrozenSet>() {
        s.iter().for_each(&mut visit);
    }
    out
}

/// Whether `obj` is a shared container, a view or iterator over one, or a
/// builtin container holding one directly.
fn holds_shared_container(obj: &Bound<'_, PyAny>) -> bool {
    let is_container = |o: &Bound<'_, PyAny>| {
        maybe_shared(o.as_ptr())
            && (matches!(
                registry::lookup_kind(o.as_ptr()),
                Some((_, ShareKind::Container))
            ) || registry::derived(o.as_ptr()).is_some())
    };
    if is_container(obj) {
        return true;
    }
    use pyo3::types::{PyList, PyTuple};
    if let Ok(t) = obj.downcast_exact::<PyTuple>() {
        return t.iter().any(|i| is_container(&i));
    }
    if let Ok(l) = obj.downcast_exact::<PyList>() {
        return l.iter().any(|i| is_container(&i));
    }
    if let Ok(d) = obj.downcast_exact::<PyDict>() {
        return d.values().iter().any(|i| is_container(&i));
    }
    false
}

/// The shared objects whose state `obj` exposes as a whole: `obj` itself
/// if shared, or the containers an iterator or view over them reads.
fn whole_owners(obj: &Bound<'_, PyAny>) -> Vec<ObjId> {
    if !maybe_shared(obj.as_ptr()) {
        return Vec::new();
    }
    if let Some((id, _)) = owner(obj) {
        return vec![id];
    }
    registry::derived(obj.as_ptr()).unwrap_or_default()
}

/// Exactly list/dict/set/deque/bytearray: their item keys and method names
/// are known. Subclasses are not: `defaultdict` inserts on a missing key,
/// `OrderedDict.move_to_end` and `Counter.subtract` mutate under names this
/// table does not know, and a subclass's own methods may run untraced (the
/// standard library's are). They, and other containers (buffer objects), are
/// accessed as a whole, and any method of theirs may change them.
fn builtin_container(obj: &Bound<'_, PyAny>) -> bool {
    let p = obj.as_ptr();
    // SAFETY: live object, GIL held; type checks only.
    let builtin = unsafe {
        ffi::PyList_CheckExact(p) != 0
            || ffi::PyDict_CheckExact(p) != 0
            || ffi::PySet_CheckExact(p) != 0
            || ffi::PyFrozenSet_CheckExact(p) != 0
            || ffi::PyByteArray_CheckExact(p) != 0
    };
    builtin || share::is_exact_deque(obj)
}

/// The key of `container[key]`. A dict registered as an object is an
/// attribute dict (`vars(o)`, module globals): its string keys are
/// attribute names.
fn item(container: ShareKind, seq: bool, key: &Bound<'_, PyAny>) -> Key {
    if container == ShareKind::Object {
        if let Ok(s) = key.downcast::<pyo3::types::PyString>() {
            if let Ok(text) = s.to_str() {
                return Key::Exact(super::keys::attr_key(text));
            }
        }
    }
    match item_key(key) {
        Some(k) if seq && k.int.is_some_and(|i| i < 0) => Key::Any,
        Some(k) => {
            key_text::remember_key(k.hash, || {
                key.repr().ok().map(|r| KeyText::Item(r.to_string()))
            });
            Key::Exact(k.hash)
        }
        None => Key::Any,
    }
}

fn is_sequence(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: live object, GIL held; type checks only.
    let builtin = unsafe {
        ffi::PyList_Check(obj.as_ptr()) != 0 || ffi::PyByteArray_Check(obj.as_ptr()) != 0
    };
    builtin || obj.get_type().name().is_ok_and(|n| n == "deque")
}

fn name_key(info: &CodeInfo, idx: usize) -> Option<(u64, MethodUse)> {
    let n = info.names.get(idx)?;
    Some((n.key, n.method))
}

fn cell_id(py: Python<'_>, view: &FrameView, info: &CodeInfo, idx: usize) -> Option<(ObjId, u64)> {
    let p = view.cell_slot(idx, info.nlocalsplus, info.ncellfree)?;
    // SAFETY: a non-NULL slot of the live frame's locals.
    let cell = unsafe { Bound::from_borrowed_ptr(py, p) };
    if cell.get_type().name().ok()? != "cell" {
        return None;
    }
    let name = info.cells.get(idx)?;
    let id = match registry::lookup(p) {
        Some(id) => id,
        // A free variable's cell was made by an enclosing frame: possibly
        // another thread's, so it is shared from first use.
        None if idx >= info.free_start => registry::cell(&cell, name.key),
        None => return None,
    };
    Some((id, name.key))
}

fn pending(parent: ObjId, key: u64, slots: u8) -> Option<Then> {
    Some(Then::Adopt { parent, key, slots })
}

/// Key under which a call result or a published argument of method `name`
/// is adopted when no item key applies.
fn call_key(name: u64, position: u64) -> u64 {
    mix(fnv_tagged(b'c', &name.to_le_bytes()), position)
}

/// `container.method(args…)` is about to be called (`this` is the `self`
/// slot, `args` the positional arguments, top last): publish the arguments
/// of mutators and follow up the result. Whether the call matched a method
/// loaded from a shared container (whose load was the access).
fn on_method_call(
    py: Python<'_>,
    this: *mut ffi::PyObject,
    args: &[*mut ffi::PyObject],
    frame: usize,
) -> Option<(ObjId, Then)> {
    let load = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let pos = s
            .methods
            .iter()
            .rposition(|m| m.frame == frame && m.container == this as usize)?;
        Some(s.methods.remove(pos))
    })?;
    // SAFETY: live stack values of the frame (it holds the references).
    let bound = |p: *mut ffi::PyObject| unsafe { Bound::from_borrowed_ptr(py, p) };
    let nargs = args.len() as u64;
    if load.use_ == MethodUse::Write {
        for (i, &arg) in args.iter().enumerate() {
            registry::adopt(py, load.parent, call_key(load.name, i as u64), &bound(arg));
        }
    }
    let _ = nargs;
    let key = args
        .first()
        .and_then(|&a| item_key(&bound(a)))
        .map_or_else(|| call_key(load.name, u64::MAX), |k| k.hash);
    Some((load.parent, pending(load.parent, key, 1)?))
}

/// The operands of a call instruction: the callable, the `self` slot and
/// the positional arguments (keyword values included), plus objects spread
/// with `*`/`**` (read by the interpreter's C code before the call).
struct CallSite {
    callable: *mut ffi::PyObject,
    this: Option<*mut ffi::PyObject>,
    args: Vec<*mut ffi::PyObject>,
    spreads: Vec<*mut ffi::PyObject>,
}

/// Read a call's operands off the stack; the layouts differ per version.
fn call_site(py: Python<'_>, op: Opcode, arg: u32, stack: &Stack) -> Option<CallSite> {
    let v313 = interp::CALLABLE_BELOW_SELF;
    let args_from = |low: u32, n: u32| -> Vec<*mut ffi::PyObject> {
        (low..low + n).rev().filter_map(|i| stack.peek(i)).collect()
    };
    match op {
        // 3.10 CALL_METHOD, 3.11/3.12 CALL: [NULL|method, callable|self, args];
        // 3.13 CALL: [callable, self|NULL, args].
        Opcode::Call | Opcode::CallKw if op == Opcode::Call || v313 => {
            let kw = u32::from(op == Opcode::CallKw);
            let (a, b) = (stack.peek(arg + kw + 2), stack.peek(arg + kw + 1));
            let (callable, this) = if v313 {
                (a?, b)
            } else {
                match a {
                    Some(m) => (m, b),
                    None => (b?, None),
                }
            };
            Some(CallSite {
                callable,
                this,
                args: args_from(1 + kw, arg),
                spreads: Vec::new(),
            })
        }
        // 3.10 CALL_FUNCTION_KW: [callable, args, kwnames].
        Opcode::CallKw => Some(CallSite {
            callable: stack.peek(arg + 2)?,
            this: None,
            args: args_from(2, arg),
            spreads: Vec::new(),
        }),
        Opcode::CallFunction => Some(CallSite {
            callable: stack.peek(arg + 1)?,
            this: None,
            args: args_from(1, arg),
            spreads: Vec::new(),
        }),
        // [callable, args, kwargs?] (3.10); [NULL, callable, …] (3.11/3.12);
        // [callable, NULL, …] (3.13).
        Opcode::CallEx => {
            let kw = arg & 1;
            let callargs = stack.peek(kw + 1)?;
            let mut spreads = vec![callargs];
            if kw == 1 {
                spreads.extend(stack.peek(1));
            }
            let callable = stack.peek(interp::call_ex_callable_slot(kw))?;
            // SAFETY: a live stack value.
            let tuple = unsafe { Bound::from_borrowed_ptr(py, callargs) };
            let args = match tuple.downcast::<pyo3::types::PyTuple>() {
                Ok(t) => t.iter().map(|a| a.as_ptr()).collect(),
                Err(_) => Vec::new(),
            };
            Some(CallSite {
                callable,
                this: None,
                args,
                spreads,
            })
        }
        _ => None,
    }
}

/// Accesses of unique (object, kind) pairs, in order.
fn push_access(out: &mut Vec<Access>, a: Access) {
    if !out.contains(&a) {
        out.push(a);
    }
}

/// A call instruction: follow up methods of shared containers, and record
/// what an opaque callee does to the shared objects handed to it.
fn on_call_instr(py: Python<'_>, ins: Instr, stack: &Stack, frame: usize) -> Option<Classified> {
    let site = call_site(py, ins.op, ins.arg, stack)?;
    // What the callee does is judged before a container method publishes
    // its arguments (they were not shared when handed over).
    let (accesses, opaque_then) = opaque_call(py, &site, frame).unwrap_or_default();
    let method = match (ins.op, site.this) {
        (Opcode::Call | Opcode::CallKw, Some(this)) => on_method_call(py, this, &site.args, frame),
        _ => None,
    };
    let then = opaque_then.or(method.map(|(_, then)| then));
    Some((accesses, then))
}

/// The container a pending method load of this frame was made on, if
/// `this` is one.
fn loaded_container(this: *mut ffi::PyObject, frame: usize) -> Option<ObjId> {
    STATE.with(|s| {
        s.borrow()
            .methods
            .iter()
            .rev()
            .find(|m| m.frame == frame && m.container == this as usize)
            .map(|m| m.parent)
    })
}

/// The accesses of an opaque callee to the shared objects of `site`, and
/// the follow-up of its result.
fn opaque_call(py: Python<'_>, site: &CallSite, frame: usize) -> Option<Classified> {
    let loaded_from = site.this.and_then(|t| loaded_container(t, frame));
    let mut then = None;
    // SAFETY: live stack values of the frame (it holds the references).
    let bound = |p: *mut ffi::PyObject| unsafe { Bound::from_borrowed_ptr(py, p) };
    let mut accesses = Vec::new();
    for &s in &site.spreads {
        for id in whole_owners(&bound(s)) {
            push_access(&mut accesses, Access::read(id, Key::Any));
        }
    }
    // Cheap filter first: most calls pass no shared object at all.
    let mut candidates = site.this.iter().chain(site.args.iter());
    if !candidates.any(|&p| maybe_holds_shared(p)) {
        return Some((accesses, None));
    }
    let callable = bound(site.callable);
    let Callee::Opaque {
        effect,
        bound: bound_self,
    } = callee::resolve(&callable)
    else {
        return Some((accesses, None));
    };
    // Arguments as the callee sees them: its bound `self` first.
    let mut args: Vec<*mut ffi::PyObject> = Vec::with_capacity(site.args.len() + 1);
    args.extend(bound_self.or(site.this));
    args.extend(site.args.iter().copied());
    let first = args.first().copied();
    let attr_name = |i: usize| -> Option<u64> {
        let name = bound(*args.get(i)?);
        let text = name
            .downcast::<pyo3::types::PyString>()
            .ok()?
            .to_str()
            .ok()?
            .to_owned();
        let key = super::keys::attr_key(&text);
        key_text::remember_key(key, || Some(KeyText::Name(text)));
        Some(key)
    };
    match effect {
        Effect::Pure => {}
        Effect::GetAttr | Effect::SetAttr | Effect::DelAttr => {
            let obj = bound(first?);
            let (id, _) = owner(&obj)?;
            let key = attr_name(1);
            let k = key.map_or(Key::Any, Key::Exact);
            if effect == Effect::GetAttr {
                push_access(&mut accesses, Access::read(id, k));
                then = key.and_then(|h| pending(id, h, 1));
            } else {
                if let (Effect::SetAttr, Some(v), Some(h)) = (effect, args.get(2), key) {
                    registry::adopt(py, id, h, &bound(*v));
                }
                push_access(&mut accesses, Access::write(id, k));
            }
        }
        Effect::Vars => {
            if let Some((id, _)) = first.and_then(|p| owner(&bound(p))) {
                then = Some(Then::Alias {
                    parent: id,
                    kind: ShareKind::Object,
                });
            }
        }
        _ => {
            let mut parents = Vec::new();
            for (i, &p) in args.iter().enumerate() {
                let arg = bound(p);
                let mut ids = whole_owners(&arg);
                let whole = ids.len();
                let held = match effect {
                    Effect::Size => false,
                    Effect::MutateFirst => i > 0,
                    _ => true,
                };
                if held {
                    let inner = held_owners(&arg);
                    ids.extend(
                        inner
                            .into_iter()
                            .filter(|id| !ids.contains(id))
                            .collect::<Vec<_>>(),
                    );
                }
                let is_self = i == 0 && site.this == Some(p) && bound_self.is_none();
                // An accounted library object (see `library`) handed to
                // untraced Python code, a package's or the standard
                // library's (`Engine.begin` is a `contextlib` wrapper), is
                // read: what such code changes in it is the package's own
                // state, which frontrun trusts.
                let read_only = match effect {
                    Effect::Package => {
                        arg.is_instance_of::<pyo3::types::PyType>()
                            || super::library::owner(&arg) == super::library::Owner::Accounted
                    }
                    Effect::Untraced => {
                        super::library::owner(&arg) == super::library::Owner::Accounted
                    }
                    _ => false,
                };
                for (n, id) in ids.into_iter().enumerate() {
                    parents.push(id);
                    if is_self && loaded_from == Some(id) {
                        continue; // the method load was the access
                    }
                    let write = match effect {
                        Effect::Write => true,
                        // What a container argument holds is still written.
                        Effect::Package | Effect::Untraced => !(read_only && n < whole),
                        Effect::MutateFirst => i == 0,
                        _ => false,
                    };
                    let a = if write {
                        Access::write(id, Key::Any)
                    } else {
                        Access::read(id, Key::Any)
                    };
                    push_access(&mut accesses, a);
                }
            }
            if effect == Effect::Untraced && args.iter().any(|&p| holds_shared_container(&bound(p)))
            {
                opaque::note_untraced();
            }
            match effect {
                Effect::Iterate if !parents.is_empty() => {
                    then = Some(Then::Derived { parents });
                }
                Effect::Alias => {
                    if let Some(&parent) = parents.first() {
                        then = Some(Then::Alias {
                            parent,
                            kind: ShareKind::Container,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    // A write makes the read of the same object redundant.
    let writes: Vec<ObjId> = accesses
        .iter()
        .filter(|a| a.kind == frontrun_engine::event::AccessKind::Write && a.key == Key::Any)
        .map(|a| a.obj)
        .collect();
    accesses.retain(|a| {
        !(a.kind == frontrun_engine::event::AccessKind::Read && writes.contains(&a.obj))
    });
    Some((accesses, then))
}

/// An operator on stack operands, run by the interpreter's C code:
/// comparing, unpacking, spreading or formatting a shared container reads
/// it as a whole; an in-place operator changes its left operand. Objects
/// with Python-level dunders need nothing (their code is traced).
fn on_operands(py: Python<'_>, ins: Instr, stack: &Stack) -> Option<Classified> {
    let (reads, write) = operand_slots(ins)?;
    let deep = reads_held(ins.op);
    let mut accesses = Vec::new();
    let mut visit = |slot: u32, write: bool| {
        let Some(p) = stack.peek(slot) else { return };
        let held = deep && !write;
        if !(if held {
            maybe_holds_shared(p)
        } else {
            maybe_shared(p)
        }) {
            return;
        }
        // SAFETY: a live stack value of the frame.
        let obj = unsafe { Bound::from_borrowed_ptr(py, p) };
        let mut ids = match registry::lookup_kind(p) {
            Some((id, ShareKind::Container)) => vec![id],
            Some(_) if !held => return,
            Some(_) => Vec::new(),
            None => registry::derived(p).unwrap_or_default(),
        };
        if held {
            for id in held_owners(&obj) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        for id in ids {
            let a = if write {
                Access::write(id, Key::Any)
            } else {
                Access::read(id, Key::Any)
            };
            push_access(&mut accesses, a);
        }
    };
    for &r in reads {
        visit(r, false);
    }
    if let Some(w) = write {
        visit(w, true);
    }
    Some((accesses, None))
}

/// Whether operator `op` reads the objects its operands hold (comparing
/// and formatting do; unpacking and truth tests do not).
fn reads_held(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Compare | Opcode::FormatTop | Opcode::FormatSecond | Opcode::FormatValue
    )
}

/// A class pattern (`case Point(x=0)`) reads attributes of the subject by
/// C-level `getattr`: which ones depends on `__match_args__` and the pattern,
/// so it reads the whole object, conservatively.
fn on_match_class(stack: &Stack) -> Option<Classified> {
    let p = stack.peek(3)?;
    if !maybe_shared(p) {
        return None;
    }
    let ids = match registry::lookup_kind(p) {
        Some((id, _)) => vec![id],
        None => registry::derived(p).unwrap_or_default(),
    };
    let mut accesses = Vec::new();
    for id in ids {
        push_access(&mut accesses, Access::read(id, Key::Any));
    }
    Some((accesses, None))
}

/// The stack slots an operator reads, and the one it changes (in-place
/// operators); `None` for other instructions.
fn operand_slots(ins: Instr) -> Option<(&'static [u32], Option<u32>)> {
    Some(match ins.op {
        Opcode::ReadTop | Opcode::FormatTop => (&[1], None),
        Opcode::FormatSecond => (&[2], None),
        Opcode::Compare => (&[1, 2], None),
        Opcode::ReadSecond => (&[2], None),
        Opcode::MatchClass => (&[3], None),
        Opcode::FormatValue if ins.arg & 4 != 0 => (&[2], None),
        Opcode::FormatValue => (&[1], None),
        Opcode::ReadTwo => (&[1, 2], None),
        Opcode::BinaryOp if ins.arg >= 13 => (&[1], Some(2)),
        Opcode::BinaryOp => (&[1, 2], None),
        Opcode::Inplace => (&[1], Some(2)),
        _ => return None,
    })
}

/// The accesses an instruction is about to make, if it touches shared
/// state, and the load to follow up.
fn classify(
    py: Python<'_>,
    view: &FrameView,
    info: &CodeInfo,
    ins: Instr,
    stack: &Stack,
    frame: usize,
) -> (Vec<Access>, Option<Then>) {
    classify_inner(py, view, info, ins, stack, frame).unwrap_or_default()
}

type Classified = (Vec<Access>, Option<Then>);

fn one(access: Access, then: Option<Then>) -> Option<Classified> {
    Some((vec![access], then))
}

fn classify_inner(
    py: Python<'_>,
    view: &FrameView,
    info: &CodeInfo,
    ins: Instr,
    stack: &Stack,
    frame: usize,
) -> Option<Classified> {
    let arg = ins.arg as usize;
    match ins.op {
        Opcode::LoadAttr | Opcode::LoadMethod => {
            let (idx, method) = interp::attr_name(ins.op == Opcode::LoadMethod, ins.arg);
            let obj = peek(py, stack, 1)?;
            let (id, kind) = owner(&obj)?;
            let (key, use_) = name_key(info, idx)?;
            if let Some(d) = module_dict(&obj) {
                // Like globals: a module attribute bound to code is not a
                // scheduling point.
                let name = &info.names.get(idx)?.obj;
                let value = d.get_item(name.bind(py)).ok()?;
                if share::is_code_like(&value) {
                    return None;
                }
                let follow = if method { None } else { pending(id, key, 1) };
                return one(Access::read(id, Key::Exact(key)), follow);
            }
            if kind == ShareKind::Container {
                // Unknown methods of other containers (buffer objects) may
                // change them.
                let use_ = if builtin_container(&obj) {
                    use_
                } else {
                    MethodUse::Write
                };
                if method {
                    let load = MethodLoad {
                        frame,
                        container: obj.as_ptr() as usize,
                        parent: id,
                        name: key,
                        use_,
                    };
                    STATE.with(|s| push_bounded(&mut s.borrow_mut().methods, load));
                }
                let access = match use_ {
                    MethodUse::Write => Access::write(id, Key::Any),
                    MethodUse::Read => Access::read(id, Key::Any),
                };
                return one(access, None);
            }
            let follow = if method {
                None
            } else if key == dict_key() {
                // `o.__dict__`: its items are `o`'s attributes.
                Some(Then::Alias {
                    parent: id,
                    kind: ShareKind::Object,
                })
            } else {
                pending(id, key, 1)
            };
            one(Access::read(id, Key::Exact(key)), follow)
        }
        Opcode::StoreAttr | Opcode::DeleteAttr => {
            let obj = peek(py, stack, 1)?;
            let (id, _) = owner(&obj)?;
            let (key, _) = name_key(info, arg)?;
            if ins.op == Opcode::StoreAttr {
                if let Some(v) = peek(py, stack, 2) {
                    registry::adopt(py, id, key, &v);
                }
            }
            one(Access::write(id, Key::Exact(key)), None)
        }
        Opcode::BinarySubscr | Opcode::StoreSubscr | Opcode::DeleteSubscr | Opcode::ContainsOp => {
            let (c, k) = if ins.op == Opcode::ContainsOp {
                (1, 2)
            } else {
                (2, 1)
            };
            let container = peek(py, stack, c)?;
            let (id, kind) = owner(&container)?;
            let key_obj = peek(py, stack, k)?;
            let whole = kind == ShareKind::Container && !builtin_container(&container);
            let key = if whole || (ins.op == Opcode::ContainsOp && is_sequence(&container)) {
                Key::Any
            } else {
                item(kind, is_sequence(&container), &key_obj)
            };
            match ins.op {
                Opcode::BinarySubscr => {
                    let follow = match key {
                        Key::Exact(h) => pending(id, h, 1),
                        Key::Any => pending(id, unkeyed(), 1),
                    };
                    // A dict subclass may insert on a missing key
                    // (`defaultdict.__missing__`), which size and key-set
                    // observers must see.
                    // SAFETY: live stack value, GIL held; a type check.
                    let inserts = whole && unsafe { ffi::PyDict_Check(container.as_ptr()) } != 0;
                    if inserts {
                        return one(Access::write(id, Key::Any), follow);
                    }
                    one(Access::read(id, key), follow)
                }
                Opcode::ContainsOp => one(Access::read(id, key), None),
                _ => {
                    if let (Opcode::StoreSubscr, Some(v)) = (ins.op, peek(py, stack, 3)) {
                        let h = match key {
                            Key::Exact(h) => h,
                            Key::Any => unkeyed(),
                        };
                        registry::adopt(py, id, h, &v);
                    }
                    one(Access::write(id, key), None)
                }
            }
        }
        Opcode::BinarySlice | Opcode::StoreSlice => {
            let (id, _) = owner(&peek(py, stack, 3)?)?;
            let access = if ins.op == Opcode::BinarySlice {
                Access::read(id, Key::Any)
            } else {
                Access::write(id, Key::Any)
            };
            one(access, None)
        }
        Opcode::GetIter => {
            let parents = whole_owners(&peek(py, stack, 1)?);
            if parents.is_empty() {
                return None;
            }
            let reads = parents
                .iter()
                .map(|&id| Access::read(id, Key::Any))
                .collect();
            Some((reads, Some(Then::Iterator { parents })))
        }
        Opcode::ForIter => {
            // Any frame: a comprehension (≤3.11) or generator expression
            // steps an iterator made by its caller.
            let it = stack.peek(1)? as usize;
            let (parents, n) = STATE.with(|s| {
                let mut s = s.borrow_mut();
                let e = s
                    .iters
                    .iter_mut()
                    .rev()
                    .find(|e| e.iter.as_ptr() as usize == it)?;
                e.next += 1;
                Some((e.parents.clone(), e.next - 1))
            })?;
            // Each step reads the containers: a concurrent insertion can
            // land between any two steps (and end the loop with an error).
            let reads = parents
                .iter()
                .map(|&id| Access::read(id, Key::Any))
                .collect();
            Some((reads, pending(*parents.first()?, index_key(n), 1)))
        }
        Opcode::Call | Opcode::CallFunction | Opcode::CallKw | Opcode::CallEx => {
            on_call_instr(py, ins, stack, frame)
        }
        Opcode::ReadTop
        | Opcode::ReadSecond
        | Opcode::ReadTwo
        | Opcode::BinaryOp
        | Opcode::Inplace
        | Opcode::FormatValue
        | Opcode::FormatTop
        | Opcode::FormatSecond
        | Opcode::Compare => on_operands(py, ins, stack),
        Opcode::MatchClass => on_match_class(stack),
        Opcode::LoadGlobal | Opcode::StoreGlobal | Opcode::DeleteGlobal => {
            let g = view.globals();
            if g.is_null() {
                return None;
            }
            // SAFETY: the running frame holds its globals dict.
            let globals = unsafe { Bound::from_borrowed_ptr(py, g) };
            let id = registry::module_globals(py, &globals);
            let (idx, slots) = if ins.op == Opcode::LoadGlobal {
                interp::load_global(ins.arg)
            } else {
                (arg, 1)
            };
            let (key, _) = name_key(info, idx)?;
            match ins.op {
                Opcode::LoadGlobal => {
                    // A name missing from the globals is a builtin, and a
                    // global bound to a function, class or module is code,
                    // not data: rebinding those concurrently is not modelled,
                    // so their loads are not scheduling points. The loaded
                    // value is still followed (a class may hold shared state).
                    let name = &info.names.get(idx)?.obj;
                    let value = match globals.downcast::<PyDict>() {
                        Ok(d) => d.get_item(name.bind(py)).ok().flatten(),
                        Err(_) => None,
                    };
                    let value = value?;
                    let access: Vec<Access> = (!share::is_code_like(&value))
                        .then(|| Access::read(id, Key::Exact(key)))
                        .into_iter()
                        .collect();
                    Some((access, pending(id, key, slots)))
                }
                Opcode::StoreGlobal => {
                    if let Some(v) = peek(py, stack, 1) {
                        registry::adopt(py, id, key, &v);
                    }
                    one(Access::write(id, Key::Exact(key)), None)
                }
                _ => one(Access::write(id, Key::Exact(key)), None),
            }
        }
        Opcode::LoadDeref | Opcode::LoadClassDeref => {
            let (id, key) = cell_id(py, view, info, arg)?;
            let follow = if ins.op == Opcode::LoadDeref {
                pending(id, key, 1)
            } else {
                None
            };
            one(Access::read(id, Key::Exact(key)), follow)
        }
        Opcode::StoreDeref | Opcode::DeleteDeref => {
            let (id, key) = cell_id(py, view, info, arg)?;
            if ins.op == Opcode::StoreDeref {
                if let Some(v) = peek(py, stack, 1) {
                    registry::adopt(py, id, key, &v);
                }
            }
            one(Access::write(id, Key::Exact(key)), None)
        }
        Opcode::Skip => None,
    }
}

/// The key of the `__dict__` attribute.
fn dict_key() -> u64 {
    static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| super::keys::attr_key("__dict__"))
}
