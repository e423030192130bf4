//! Threads started inside explored threads, `join`, `sleep`, and a test hook
//! to emit an access from Python.

use frontrun_engine::event::{Access, AccessKind, Event, Key, ThreadId};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::coro::Hub;
use super::ctx::{caller_loc, current};
use super::pool::{Job, WorkerPool};
use frontrun_engine::coop::{JoinOp, SleepOp};

fn thread_event(kind: AccessKind, tid: ThreadId) -> Event {
    Event::new(
        vec![Access {
            obj: tid as u64,
            key: Key::Any,
            kind,
        }],
        0,
    )
}

/// Start `target()` as a new explored thread; returns its thread id.
#[pyfunction]
#[pyo3(signature = (pool, target, name, thread = None))]
pub fn _coop_spawn(
    py: Python<'_>,
    pool: &Bound<'_, WorkerPool>,
    target: Py<PyAny>,
    name: String,
    thread: Option<Py<PyAny>>,
) -> PyResult<ThreadId> {
    crate::ffi_guard::guard(|| {
        let (gate, me) = current().ok_or_else(|| {
            PyRuntimeError::new_err("_coop_spawn called outside an explored thread")
        })?;
        if gate.hub().is_none() {
            WorkerPool::ensure(pool, 1)?;
        }
        let child = gate.add_thread(name.clone(), false);
        let job = Job {
            gate: gate.clone(),
            tid: child,
            func: target,
            args: PyTuple::empty(py).unbind(),
            name: name.clone(),
            thread,
        };
        match Hub::of(&gate) {
            Some(hub) => hub.submit(job),
            None => pool.get().submit(job),
        }
        gate.point(
            py,
            me,
            thread_event(AccessKind::Spawn, child),
            None,
            caller_loc(py),
            Some(format!("start thread '{name}'")),
        )?;
        Ok(child)
    })
}

/// Wait for explored thread `tid`; `False` if `timeout` fired first.
#[pyfunction]
#[pyo3(signature = (tid, timeout = None))]
pub fn _coop_join(py: Python<'_>, tid: ThreadId, timeout: Option<f64>) -> PyResult<bool> {
    crate::ffi_guard::guard(|| {
        let Some((gate, me)) = current() else {
            // Outside its execution every explored thread has finished.
            return Ok(true);
        };
        if tid == me {
            return Err(PyRuntimeError::new_err("cannot join current thread"));
        }
        // The join times out only when nothing else can run (see `JoinOp`), so
        // its timing out while the thread still runs is never explored: a pass
        // cannot be a proof.
        if timeout.is_some() && !gate.is_finished(tid) {
            gate.note_unexplored("Thread.join(timeout=) on a thread that was still running");
        }
        let r = gate.point(
            py,
            me,
            thread_event(AccessKind::Join, tid),
            Some(Box::new(JoinOp {
                child: tid,
                timeout: timeout.map(|t| t.max(0.0)),
            })),
            caller_loc(py),
            Some("join thread".into()),
        )?;
        Ok(r != 0)
    })
}

/// Whether explored thread `tid` is still running (in the current execution).
#[pyfunction]
pub fn _coop_alive(tid: ThreadId) -> PyResult<bool> {
    crate::ffi_guard::guard(|| Ok(current().is_some_and(|(gate, _)| !gate.is_finished(tid))))
}

/// `time.sleep(secs)` on an explored thread: a yield point, no real sleep;
/// the virtual clock moves on by `secs`. Returns `False` when the caller
/// should really sleep (not explored).
#[pyfunction]
#[pyo3(signature = (secs = 0.0))]
pub fn _coop_sleep(py: Python<'_>, secs: f64) -> PyResult<bool> {
    crate::ffi_guard::guard(|| {
        let Some((gate, me)) = current() else {
            return Ok(false);
        };
        let (steps, mark) = gate.steps();
        gate.point(
            py,
            me,
            Event::default(),
            Some(Box::new(SleepOp {
                steps,
                mark,
                secs: if secs.is_finite() { secs.max(0.0) } else { 0.0 },
            })),
            caller_loc(py),
            Some("sleep".into()),
        )?;
        Ok(true)
    })
}

/// Test hook: make the current explored thread perform `kind` ("read" or
/// "write") on `(obj, key)`, as the tracer would.
#[pyfunction]
pub fn _driver_emit(py: Python<'_>, obj: u64, key: u64, kind: &str) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        let kind = match kind {
            "read" => AccessKind::Read,
            "write" => AccessKind::Write,
            k => {
                return Err(PyValueError::new_err(format!(
                    "kind must be read/write, not {k:?}"
                )))
            }
        };
        crate::hooks::emit(
            py,
            Event::new(
                vec![Access {
                    obj,
                    key: Key::Exact(key),
                    kind,
                }],
                0,
            ),
        )
    })
}
