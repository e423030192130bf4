//! Everything the tracer relies on that differs between the CPython versions
//! it supports (3.10–3.13), in one place: the frame layouts ([`frame`]), how
//! opcode arguments and call operands are laid out, where the live stack
//! depth comes from, and the checks of these against the running
//! interpreter ([`self_check`], [`check_stack_depths`]).
//!
//! The rest of the tracer asks the questions below instead of testing
//! versions itself.

mod depth_check;
pub mod frame;

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyModule;

use super::decode::PrefixEvents;

pub use depth_check::{check_stack_depths, DepthReport};
pub use frame::SUPPORTED;

/// Where the event of an `EXTENDED_ARG`-prefixed instruction fires.
pub const PREFIX_EVENTS: PrefixEvents = if cfg!(Py_3_12) {
    PrefixEvents::OnBoth
} else {
    PrefixEvents::OnPrefixOnly
};

/// 3.12+ frames do not record their live stack depth at an opcode event: it
/// is computed per code object by [`static_depths`] instead of read.
pub const STATIC_STACK_DEPTH: bool = cfg!(Py_3_12);

/// 3.11+ frames hold locals, cells and frees in one `localsplus` array, with
/// the value stack right after it.
pub const LOCALSPLUS: bool = cfg!(Py_3_11);

/// 3.13 instruments a code object for opcode events only from the
/// `f_trace_opcodes` setter, and only while the frame's `f_trace` is set;
/// earlier versions read the frame's flag directly.
pub const OPCODES_VIA_SETTER: bool = cfg!(Py_3_13);

/// Whether greenlets can park inside the trace callback (the API to leave
/// the interpreter's tracing state exists from 3.11).
pub const SWITCHES_IN_CALLBACK: bool = cfg!(Py_3_11);

/// The code attribute explanations name a function by.
pub const FUNCTION_NAME_ATTR: &str = if cfg!(Py_3_11) {
    "co_qualname"
} else {
    "co_name"
};

/// `LOAD_ATTR`'s (or 3.10/3.11 `LOAD_METHOD`'s) name index, and whether it
/// loads a method (3.12 folds `LOAD_METHOD` into `LOAD_ATTR`'s low bit).
pub fn attr_name(is_load_method: bool, arg: u32) -> (usize, bool) {
    let arg = arg as usize;
    if is_load_method {
        (arg, true)
    } else if cfg!(Py_3_12) {
        (arg >> 1, arg & 1 == 1)
    } else {
        (arg, false)
    }
}

/// `LOAD_GLOBAL`'s name index and the number of values it pushes (3.11+
/// keeps a push-NULL flag in the argument's low bit).
pub fn load_global(arg: u32) -> (usize, u8) {
    if cfg!(Py_3_11) {
        ((arg >> 1) as usize, 1 + (arg & 1) as u8)
    } else {
        (arg as usize, 1)
    }
}

/// 3.13 `CALL` is `[callable, self|NULL, args]`; 3.11/3.12 `CALL` and 3.10
/// `CALL_METHOD` are `[NULL|method, callable|self, args]`.
pub const CALLABLE_BELOW_SELF: bool = cfg!(Py_3_13);

/// Stack slot (1 = top) of `CALL_FUNCTION_EX`'s callable, `kwargs` being 1
/// when a kwargs dict is passed: `[callable, args, kwargs?]` (3.10),
/// `[NULL, callable, …]` (3.11/3.12), `[callable, NULL, …]` (3.13).
pub fn call_ex_callable_slot(kwargs: u32) -> u32 {
    kwargs + 2 + u32::from(cfg!(Py_3_13))
}

/// Whether this interpreter records the live stack depth *and* has the
/// exception table the static derivation needs, so the two can be compared
/// ([`check_stack_depths`]): 3.11 only.
pub const DEPTHS_COMPARABLE: bool = cfg!(all(Py_3_11, not(Py_3_12)));

/// Check the frame layout against the public API on the caller's frame
/// (at every `install`). The stack-depth cross-check is slower (it runs a
/// workload) and is run by the test suite through `_tracer_self_check`.
pub fn self_check() -> Result<(), String> {
    frame::self_check()
}

/// Python used once per code object: its `localsplus` names and, where the
/// frame does not record it (3.12+), its stack depth at each code unit,
/// derived from the compiler's own stack effects, jumps and exception table.
/// On 3.11 [`check_stack_depths`] compares the derivation with the live
/// depth the frame records.
const ANALYSIS: &std::ffi::CStr = cr#"
import dis, sys

def localsplus(co):
    names = []
    if sys.version_info >= (3, 11):
        while True:
            try:
                names.append(co._varname_from_oparg(len(names)))
            except Exception:
                return names
    return list(co.co_cellvars) + list(co.co_freevars)

_NOFALL = {dis.opmap[n] for n in ("RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE",
           "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT") if n in dis.opmap}
_RETURN_GENERATOR = dis.opmap.get("RETURN_GENERATOR", -1)
_JUMPS = set(dis.hasjrel) | set(dis.hasjabs) | set(getattr(dis, "hasjump", ()))
# 3.11 only: the compiler charges a call's argument pops to PRECALL, which
# pops nothing at run time; CALL pops them.
_PRECALL = dis.opmap.get("PRECALL", -1)
_CALL = dis.opmap.get("CALL", -1)

def effect(i, jump):
    if i.opcode == _PRECALL:
        return 0
    e = dis.stack_effect(i.opcode, i.arg, jump=jump)
    if i.opcode == _CALL and _PRECALL >= 0:
        e -= i.arg
    return e

def depths(co):
    ins = list(dis.get_instructions(co))
    at = {i.offset: k for k, i in enumerate(ins)}
    out = [-1] * (len(co.co_code) // 2)
    work = [(0, 0)]
    for e in dis._parse_exception_table(co):
        work.append((e.target, e.depth + 1 + (1 if e.lasti else 0)))
    while work:
        off, d = work.pop()
        k = at.get(off)
        while k is not None and k < len(ins):
            i = ins[k]
            if out[i.offset // 2] >= 0:
                break
            out[i.offset // 2] = d
            if i.opcode in _JUMPS:
                work.append((i.argval, d + effect(i, True)))
            if i.opcode in _NOFALL:
                break
            if i.opcode == _RETURN_GENERATOR:
                d += 1  # resumed with the sent value pushed (dis says 0)
            else:
                d += effect(i, False)
            k += 1
    return out
"#;

static MODULE: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

fn analysis(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    let m = MODULE.get_or_try_init(py, || {
        PyModule::from_code(
            py,
            ANALYSIS,
            c"<frontrun-interp>",
            c"_frontrun_interp_analysis",
        )
        .map(Bound::unbind)
    })?;
    Ok(m.bind(py))
}

/// The stack depth before each code unit of `code` (-1: unreachable), by
/// abstract interpretation of its bytecode (3.11+: needs the exception table).
pub fn static_depths(code: &Bound<'_, PyAny>) -> PyResult<Vec<i32>> {
    analysis(code.py())?
        .getattr("depths")?
        .call1((code,))?
        .extract()
}

/// The names of `code`'s `localsplus` slots (3.11+), or its cell and free
/// variables (3.10).
pub fn localsplus<'py>(code: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    analysis(code.py())?
        .getattr("localsplus")?
        .call1((code,))?
        .extract()
}

#[cfg(Py_3_11)]
extern "C" {
    fn PyThreadState_EnterTracing(tstate: *mut pyo3::ffi::PyThreadState);
    fn PyThreadState_LeaveTracing(tstate: *mut pyo3::ffi::PyThreadState);
}

/// Leave the interpreter's "inside a trace callback" state on this thread
/// (a greenlet switching away from inside the callback); nothing before 3.11.
pub fn leave_tracing() {
    #[cfg(Py_3_11)]
    // SAFETY: the GIL is held (the caller switches greenlets); the thread
    // state is this thread's, in the state its callback set.
    unsafe {
        PyThreadState_LeaveTracing(pyo3::ffi::PyThreadState_Get());
    }
}

/// Re-enter what [`leave_tracing`] left, once the greenlet resumed.
pub fn enter_tracing() {
    #[cfg(Py_3_11)]
    // SAFETY: as in `leave_tracing`; this re-enters what it left.
    unsafe {
        PyThreadState_EnterTracing(pyo3::ffi::PyThreadState_Get());
    }
}
