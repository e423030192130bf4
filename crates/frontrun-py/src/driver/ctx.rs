//! Which exploration, if any, the current thread takes part in.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use frontrun_engine::event::ThreadId;
use pyo3::prelude::*;

use super::gate::{Gate, Loc};

thread_local! {
    static CURRENT: RefCell<Option<(Arc<Gate>, ThreadId)>> = const { RefCell::new(None) };
    /// The controller runs `setup()`: primitives it creates are cooperative.
    static IN_SETUP: Cell<bool> = const { Cell::new(false) };
    /// Our own bookkeeping (creating a worker thread) must see real primitives.
    static BYPASS: Cell<bool> = const { Cell::new(false) };
    static OS_ID: u64 = NEXT_OS_ID.fetch_add(1, Ordering::Relaxed);
    /// On the controller, during an execution: the clock its `setup`,
    /// invariant and `teardown` read (`Some(None)`: before its gate exists,
    /// at virtual time 0).
    static CONTROLLER_CLOCK: RefCell<Option<Option<Arc<Gate>>>> = const { RefCell::new(None) };
}

static NEXT_OS_ID: AtomicU64 = AtomicU64::new(1);

/// Owner ids of threads outside an exploration, disjoint from `ThreadId`s.
pub const OS_OWNER: u64 = 1 << 62;

/// The gate and thread id of the current explored thread.
pub fn current() -> Option<(Arc<Gate>, ThreadId)> {
    if BYPASS.with(Cell::get) {
        return None;
    }
    CURRENT.with(|c| c.borrow().clone())
}

pub fn set_current(v: Option<(Arc<Gate>, ThreadId)>) {
    CURRENT.with(|c| *c.borrow_mut() = v);
}

/// Set the current explored thread, returning the previous one (the
/// coroutine substrate swaps it at each greenlet switch).
pub fn swap_current(v: Option<(Arc<Gate>, ThreadId)>) -> Option<(Arc<Gate>, ThreadId)> {
    CURRENT.with(|c| c.replace(v))
}

pub fn set_in_setup(v: bool) {
    IN_SETUP.with(|c| c.set(v));
}

/// Run `f` with real primitives and no scheduling on this thread.
pub fn bypass<R>(f: impl FnOnce() -> R) -> R {
    let old = BYPASS.with(|c| c.replace(true));
    let r = f();
    BYPASS.with(|c| c.set(old));
    r
}

/// The owner id this thread uses on primitives outside a gate.
pub fn os_owner() -> u64 {
    OS_OWNER | OS_ID.with(|v| *v)
}

/// While alive, the controller reads the virtual clock of the execution it
/// runs (see `controller_gate`); restored on drop, also on error.
pub struct ControllerClock(());

impl ControllerClock {
    pub fn start() -> ControllerClock {
        CONTROLLER_CLOCK.with(|c| *c.borrow_mut() = Some(None));
        ControllerClock(())
    }
}

impl Drop for ControllerClock {
    fn drop(&mut self) {
        CONTROLLER_CLOCK.with(|c| *c.borrow_mut() = None);
    }
}

/// From now on the controller's clock is `gate`'s.
pub fn controller_gate(gate: &Arc<Gate>) {
    CONTROLLER_CLOCK.with(|c| {
        if let Some(g) = c.borrow_mut().as_mut() {
            *g = Some(gate.clone());
        }
    });
}

/// Virtual seconds since the current execution started, on its explored
/// threads and on the controller while it runs it; `None` elsewhere (real
/// time applies).
#[pyfunction]
pub fn _coop_vclock(py: Python<'_>) -> PyResult<Option<f64>> {
    crate::ffi_guard::guard(|| {
        if let Some((gate, tid)) = current() {
            if read_by_traced_code(py) {
                gate.note_clock_read(tid);
            }
            return Ok(Some(gate.vnow()));
        }
        if BYPASS.with(Cell::get) {
            return Ok(None);
        }
        Ok(CONTROLLER_CLOCK.with(|c| {
            c.borrow()
                .as_ref()
                .map(|g| g.as_ref().map_or(0.0, |g| g.vnow()))
        }))
    })
}

/// Whether the clock being read (through one of `_coop`'s clock functions,
/// the innermost frame) is read by code the tracer traces: what the thread
/// does next may then depend on the time. The standard library's reads
/// (`queue.Queue.get`'s deadline) are left out, as in `tracer::wait_state`.
fn read_by_traced_code(py: Python<'_>) -> bool {
    // SAFETY: GIL held; a borrowed frame of this thread or NULL, of which
    // `from_borrowed_ptr_or_opt` takes a new reference.
    let Some(clock) = (unsafe {
        Bound::<PyAny>::from_borrowed_ptr_or_opt(py, pyo3::ffi::PyEval_GetFrame().cast())
    }) else {
        return false;
    };
    let Ok(reader) = clock.getattr(pyo3::intern!(py, "f_back")) else {
        return false;
    };
    if reader.is_none() {
        return false;
    }
    let (Ok(code), globals) = (
        reader.getattr(pyo3::intern!(py, "f_code")),
        reader.getattr(pyo3::intern!(py, "f_globals")).ok(),
    ) else {
        return false;
    };
    crate::tracer::code::info_in(py, &code, globals.as_ref()).is_ok_and(|i| i.traced)
}

/// Whether primitives created now on this thread should be cooperative.
pub fn coop_active() -> bool {
    !BYPASS.with(Cell::get) && (IN_SETUP.with(Cell::get) || CURRENT.with(|c| c.borrow().is_some()))
}

/// Python face of [`coop_active`].
#[pyfunction]
pub fn _coop_active() -> PyResult<bool> {
    crate::ffi_guard::guard(|| Ok(coop_active()))
}

/// Whether the current thread is an explored thread (scheduling applies).
#[pyfunction]
pub fn _coop_scheduled() -> PyResult<bool> {
    crate::ffi_guard::guard(|| Ok(current().is_some()))
}

/// Where the current thread is, as the user sees it (the innermost frame
/// of the user's code: see `tracer::user_frame`).
pub fn caller_loc(py: Python<'_>) -> Option<Loc> {
    crate::tracer::user_loc(py)
}

/// Give a new cooperative primitive its object id now, in creation order,
/// which is deterministic for a schedule; first-use order would not be.
#[pyfunction]
pub fn _coop_register(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    crate::ffi_guard::guard(|| Ok(crate::tracer::registry::id_of(obj.py(), obj)))
}

/// In a child forked from inside an exploration: this thread takes part in
/// none (its gate's other threads do not exist here), so forget the gate,
/// the event sink and the tracer, and let a new exploration start.
#[pyfunction]
pub fn _forget_exploration_after_fork(py: Python<'_>) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        if CURRENT.with(|c| c.borrow().is_some()) {
            crate::tracer::uninstall(py);
            crate::hooks::set_sink(None);
        }
        set_current(None);
        IN_SETUP.with(|c| c.set(false));
        BYPASS.with(|c| c.set(false));
        Ok(())
    })
}
