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

use super::code::{self, CodeInfo};
use super::decode::Instr;
use super::describe::{self, KeyText};
use super::frame::{FrameView, Stack, StackDepth};
use super::keys::{fnv_tagged, index_key, item_key, mix, unkeyed, FastMap};
use super::ops::{MethodUse, Op};
use super::registry::{self, Kind};
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
    /// It is an iterator over shared `parent`: its items are shared.
    Iterator { parent: ObjId },
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
    parent: ObjId,
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
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| match what {
        ffi::PyTrace_CALL => on_call(py, &view),
        ffi::PyTrace_OPCODE => on_opcode(py, &view, frame as usize),
        _ => {
            on_return(py, &view, frame as usize);
            Ok(())
        }
    }));
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
    // SAFETY: the frame holds a strong reference to its code object.
    let bound = unsafe { Bound::from_borrowed_ptr(py, code as *mut ffi::PyObject) };
    let info = code::info(py, &bound)?;
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.codes.insert(code, info.clone());
        s.last = Some((code, info.clone()));
    });
    Ok(info)
}

fn on_call(py: Python<'_>, view: &FrameView) -> PyResult<()> {
    let info = code_info(py, view)?;
    // Line events are not needed: opcodes are enough.
    if cfg!(Py_3_13) {
        view.write_trace_flags(false, None);
        if info.traced {
            // 3.13 instruments the code for opcode events in the
            // `f_trace_opcodes` setter, and only if `f_trace` is set.
            view.set_flag(pyo3::intern!(py, "f_trace"), true);
            if !view.set_flag(pyo3::intern!(py, "f_trace_opcodes"), true) {
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
                    Op::Skip => true,
                    Op::Call => s.methods.is_empty(),
                    Op::ForIter => s.iters.is_empty(),
                    _ => false,
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
    let stack = || {
        let depth = if cfg!(Py_3_12) {
            StackDepth::Known(info.depths.get(unit).and_then(|&d| u32::try_from(d).ok()))
        } else {
            StackDepth::Live
        };
        view.stack(depth, info.nlocalsplus, info.stacksize)
    };
    let code = view.code() as usize;
    resolve_pending(py, frame, code, unit, &stack);
    if ins.op == Op::Skip {
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
    let Some(access) = access else { return Ok(()) };
    let site = site_of(py, &info, unit);
    hooks::emit(
        py,
        Event {
            accesses: vec![access],
            site,
        },
    )
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
        Then::Iterator { parent } => {
            if let Some(it) = peek(py, &stack, 1) {
                let entry = SharedIter {
                    frame,
                    iter: it.unbind(),
                    parent,
                    next: 0,
                };
                STATE.with(|s| push_bounded(&mut s.borrow_mut().iters, entry));
            }
        }
    }
}

/// Borrow a stack slot as a `Bound`.
fn peek<'py>(py: Python<'py>, stack: &Stack, i: u32) -> Option<Bound<'py, PyAny>> {
    // SAFETY: `peek` only yields non-NULL pointers to live values in the
    // frame's stack, which holds a reference for this whole call.
    stack
        .peek(i)
        .map(|p| unsafe { Bound::from_borrowed_ptr(py, p) })
}

/// A shared owner: its id and kind. Modules stand for their globals dict,
/// once that dict is shared.
fn owner(obj: &Bound<'_, PyAny>) -> Option<(ObjId, Kind)> {
    if let Some(found) = registry::lookup_kind(obj.as_ptr()) {
        return Some(found);
    }
    // SAFETY: live object, GIL held.
    if unsafe { ffi::PyModule_Check(obj.as_ptr()) } != 0 {
        // SAFETY: a module; returns its borrowed dict (or NULL).
        let d = unsafe { ffi::PyModule_GetDict(obj.as_ptr()) };
        return registry::lookup(d).map(|id| (id, Kind::Object));
    }
    None
}

/// The key of `container[key]`.
fn item(container: Kind, seq: bool, key: &Bound<'_, PyAny>) -> Key {
    let _ = container;
    match item_key(key) {
        Some(k) if seq && k.int.is_some_and(|i| i < 0) => Key::Any,
        Some(k) => {
            describe::remember_key(k.hash, || {
                key.repr().ok().map(|r| KeyText::Item(r.to_string()))
            });
            Key::Exact(k.hash)
        }
        None => Key::Any,
    }
}

/// Functions, classes, modules and builtin functions.
fn is_code_like(obj: &Bound<'_, PyAny>) -> bool {
    let p = obj.as_ptr();
    // SAFETY: live object, GIL held; type checks only.
    unsafe {
        ffi::PyFunction_Check(p) != 0
            || ffi::PyType_Check(p) != 0
            || ffi::PyModule_Check(p) != 0
            || ffi::PyCFunction_Check(p) != 0
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

/// `container.method(args…)` is about to be called: publish the arguments
/// of mutators and follow up the result.
fn on_method_call(py: Python<'_>, stack: &Stack, frame: usize, nargs: u32) -> Option<Then> {
    let this = stack.peek(nargs + 1)?;
    let load = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let pos = s
            .methods
            .iter()
            .rposition(|m| m.frame == frame && m.container == this as usize)?;
        Some(s.methods.remove(pos))
    })?;
    let first = if nargs >= 1 {
        peek(py, stack, nargs)
    } else {
        None
    };
    if load.use_ == MethodUse::Write {
        for i in 1..=nargs {
            if let Some(arg) = peek(py, stack, i) {
                registry::adopt(
                    py,
                    load.parent,
                    call_key(load.name, u64::from(nargs - i)),
                    &arg,
                );
            }
        }
    }
    let key = first
        .as_ref()
        .and_then(item_key)
        .map_or_else(|| call_key(load.name, u64::MAX), |k| k.hash);
    pending(load.parent, key, 1)
}

/// The access an instruction is about to make, if it touches shared state,
/// and the load to follow up.
fn classify(
    py: Python<'_>,
    view: &FrameView,
    info: &CodeInfo,
    ins: Instr,
    stack: &Stack,
    frame: usize,
) -> (Option<Access>, Option<Then>) {
    match classify_inner(py, view, info, ins, stack, frame) {
        Some((access, then)) => (access, then),
        None => (None, None),
    }
}

type Classified = (Option<Access>, Option<Then>);

fn classify_inner(
    py: Python<'_>,
    view: &FrameView,
    info: &CodeInfo,
    ins: Instr,
    stack: &Stack,
    frame: usize,
) -> Option<Classified> {
    let arg = ins.arg as usize;
    let v312 = cfg!(Py_3_12);
    match ins.op {
        Op::LoadAttr | Op::LoadMethod => {
            let method = ins.op == Op::LoadMethod || (v312 && arg & 1 == 1);
            let idx = if v312 && ins.op == Op::LoadAttr {
                arg >> 1
            } else {
                arg
            };
            let obj = peek(py, stack, 1)?;
            let (id, kind) = owner(&obj)?;
            let (key, use_) = name_key(info, idx)?;
            if kind == Kind::Container {
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
                return Some((Some(access), None));
            }
            let follow = if method { None } else { pending(id, key, 1) };
            Some((Some(Access::read(id, Key::Exact(key))), follow))
        }
        Op::StoreAttr | Op::DeleteAttr => {
            let obj = peek(py, stack, 1)?;
            let (id, _) = owner(&obj)?;
            let (key, _) = name_key(info, arg)?;
            if ins.op == Op::StoreAttr {
                if let Some(v) = peek(py, stack, 2) {
                    registry::adopt(py, id, key, &v);
                }
            }
            Some((Some(Access::write(id, Key::Exact(key))), None))
        }
        Op::BinarySubscr | Op::StoreSubscr | Op::DeleteSubscr | Op::ContainsOp => {
            let (c, k) = if ins.op == Op::ContainsOp {
                (1, 2)
            } else {
                (2, 1)
            };
            let container = peek(py, stack, c)?;
            let (id, kind) = owner(&container)?;
            let key_obj = peek(py, stack, k)?;
            let key = if ins.op == Op::ContainsOp && is_sequence(&container) {
                Key::Any
            } else {
                item(kind, is_sequence(&container), &key_obj)
            };
            match ins.op {
                Op::BinarySubscr => {
                    let follow = match key {
                        Key::Exact(h) => pending(id, h, 1),
                        Key::Any => pending(id, unkeyed(), 1),
                    };
                    Some((Some(Access::read(id, key)), follow))
                }
                Op::ContainsOp => Some((Some(Access::read(id, key)), None)),
                _ => {
                    if let (Op::StoreSubscr, Some(v)) = (ins.op, peek(py, stack, 3)) {
                        let h = match key {
                            Key::Exact(h) => h,
                            Key::Any => unkeyed(),
                        };
                        registry::adopt(py, id, h, &v);
                    }
                    Some((Some(Access::write(id, key)), None))
                }
            }
        }
        Op::BinarySlice | Op::StoreSlice => {
            let (id, _) = owner(&peek(py, stack, 3)?)?;
            let access = if ins.op == Op::BinarySlice {
                Access::read(id, Key::Any)
            } else {
                Access::write(id, Key::Any)
            };
            Some((Some(access), None))
        }
        Op::GetIter => {
            let (id, _) = owner(&peek(py, stack, 1)?)?;
            Some((
                Some(Access::read(id, Key::Any)),
                Some(Then::Iterator { parent: id }),
            ))
        }
        Op::ForIter => {
            let it = stack.peek(1)? as usize;
            let (parent, n) = STATE.with(|s| {
                let mut s = s.borrow_mut();
                let e = s
                    .iters
                    .iter_mut()
                    .rev()
                    .find(|e| e.frame == frame && e.iter.as_ptr() as usize == it)?;
                e.next += 1;
                Some((e.parent, e.next - 1))
            })?;
            Some((None, pending(parent, index_key(n), 1)))
        }
        Op::Call => Some((None, on_method_call(py, stack, frame, ins.arg))),
        Op::LoadGlobal | Op::StoreGlobal | Op::DeleteGlobal => {
            let g = view.globals();
            if g.is_null() {
                return None;
            }
            // SAFETY: the running frame holds its globals dict.
            let globals = unsafe { Bound::from_borrowed_ptr(py, g) };
            let id = registry::module_globals(py, &globals);
            let v311 = cfg!(Py_3_11);
            let idx = if ins.op == Op::LoadGlobal && v311 {
                arg >> 1
            } else {
                arg
            };
            let (key, _) = name_key(info, idx)?;
            match ins.op {
                Op::LoadGlobal => {
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
                    let slots = if v311 { 1 + (arg & 1) as u8 } else { 1 };
                    let access = (!is_code_like(&value)).then(|| Access::read(id, Key::Exact(key)));
                    Some((access, pending(id, key, slots)))
                }
                Op::StoreGlobal => {
                    if let Some(v) = peek(py, stack, 1) {
                        registry::adopt(py, id, key, &v);
                    }
                    Some((Some(Access::write(id, Key::Exact(key))), None))
                }
                _ => Some((Some(Access::write(id, Key::Exact(key))), None)),
            }
        }
        Op::LoadDeref | Op::LoadClassDeref => {
            let (id, key) = cell_id(py, view, info, arg)?;
            let follow = if ins.op == Op::LoadDeref {
                pending(id, key, 1)
            } else {
                None
            };
            Some((Some(Access::read(id, Key::Exact(key))), follow))
        }
        Op::StoreDeref | Op::DeleteDeref => {
            let (id, key) = cell_id(py, view, info, arg)?;
            if ins.op == Op::StoreDeref {
                if let Some(v) = peek(py, stack, 1) {
                    registry::adopt(py, id, key, &v);
                }
            }
            Some((Some(Access::write(id, Key::Exact(key))), None))
        }
        Op::Skip => None,
    }
}
