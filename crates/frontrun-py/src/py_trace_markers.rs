//! Python face of trace markers: the `MarkerGate` class behind
//! `frontrun.trace_markers.TraceExecutor`, and its exceptions.

use std::sync::Arc;
use std::time::Duration;

use frontrun_engine::marker_schedule::{MarkerStep, ScheduleError as EngineScheduleError};
use frontrun_engine::markers::FileMarkers;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::marker_errors::{
    stack_summary, DuplicateMarkerError, MarkerNotFoundError, ScheduleAborted,
    ScheduleDeadlockError, ScheduleError, ThreadFailedError, TraceTimeoutError,
};
use crate::marker_gate::{describe_state, Failure, MarkerGate};
use crate::{block_hook, line_tracer};
use frontrun_engine::marker_files::{markers_of, FileScan};

/// How long `wait` lets the other threads unwind after a failure.
const UNWIND_GRACE: Duration = Duration::from_secs(1);

/// Turn-taking for one run of a trace-marker schedule.
#[pyclass(module = "frontrun._native", name = "MarkerGate", frozen)]
pub struct PyMarkerGate {
    gate: Arc<MarkerGate>,
    /// Pass the turn when a thread blocks (off for asyncio, whose tasks
    /// already run one at a time and whose workers hand a baton around).
    watch_blocking: bool,
}

#[pymethods]
impl PyMarkerGate {
    #[new]
    #[pyo3(signature = (steps, park_timeout, listener=None, on_db=None, watch_blocking=true))]
    fn new(
        steps: Vec<(String, String)>,
        park_timeout: f64,
        listener: Option<Py<PyAny>>,
        on_db: Option<Py<PyAny>>,
        watch_blocking: bool,
    ) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            let park = positive_duration(park_timeout, "park_timeout")?;
            let steps = steps
                .into_iter()
                .map(|(t, m)| MarkerStep::new(t, m))
                .collect();
            Ok(PyMarkerGate {
                gate: Arc::new(MarkerGate::new(steps, park, listener, on_db)),
                watch_blocking,
            })
        })
    }

    /// For the lock-wait probe: `(call id, backend pid, connection)` of the
    /// database call the thread holding the turn is in, waiting up to
    /// `timeout` seconds for one; `None` if none (or the run is over).
    fn db_call_to_probe(
        &self,
        py: Python<'_>,
        timeout: f64,
    ) -> PyResult<Option<(u64, i64, Py<PyAny>)>> {
        crate::ffi_guard::guard(|| {
            Ok({
                let timeout = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
                self.gate.db_call_to_probe(py, timeout)
            })
        })
    }

    /// The server says call `call_id` waits for a row lock of `blockers`
    /// (backend pids) while running `query`: its thread passes the turn.
    #[pyo3(signature = (call_id, blockers, query=None))]
    fn db_call_blocked(
        &self,
        call_id: u64,
        blockers: Vec<i64>,
        query: Option<String>,
    ) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.gate.db_call_blocked(call_id, blockers, query)))
    }

    /// Thread `idx` (an asyncio task's worker) is about to wait for
    /// something only another task or the loop can complete (`what` at
    /// `at`): the turn passes on, as for a blocking call. Such a wait may end
    /// by itself (a timer), so it is never reported as a deadlock; the run's
    /// timeout bounds it.
    fn block(&self, idx: usize, what: String, at: String) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.gate.on_block(idx, what, at, Some(f64::INFINITY), None);
            Ok(())
        })
    }

    /// Thread `idx`'s wait is over: take the turn back (parks until it may).
    fn unblock(&self, py: Python<'_>, idx: usize) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.gate
                .on_unblock(py, idx)
                .map_err(crate::marker_errors::stop_error)
        })
    }

    /// Whether every thread of the run has finished.
    fn all_finished(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.gate.lock().sched.all_finished()))
    }

    /// Declare thread `name` running `func`; checks `func`'s source file for
    /// duplicate markers. Returns the thread's index.
    fn register(&self, py: Python<'_>, name: &str, func: &Bound<'_, PyAny>) -> PyResult<usize> {
        crate::ffi_guard::guard(|| {
            if let Some(path) = source_file(py, func) {
                match markers_of(&path) {
                    FileScan::Duplicate(dup) => {
                        return Err(DuplicateMarkerError::new_err(format!("{path}: {dup}")));
                    }
                    FileScan::Markers(m) => self.gate.note_file(&path, Some(m)),
                    FileScan::NoMarkers => self.gate.note_file(&path, None),
                    FileScan::Unreadable => {}
                }
            }
            self.gate
                .register(name)
                .map_err(|e| PyValueError::new_err(e.to_string()))
        })
    }

    /// Body of thread `idx`: wait for the turn, run `func`, record the outcome.
    /// Never raises: the outcome is reported by `wait`.
    #[pyo3(signature = (idx, func, args, kwargs=None))]
    fn thread_body(
        &self,
        py: Python<'_>,
        idx: usize,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            let body = std::panic::AssertUnwindSafe(|| {
                let ident = current_ident(py);
                // Trace only the function: the wait at the start (and the park
                // listener it may call) is frontrun's own business.
                let outcome = self
                    .gate
                    .on_start(py, idx, ident)
                    .map_err(crate::marker_errors::stop_error)
                    .and_then(|()| {
                        line_tracer::install(py, self.gate.clone(), idx);
                        if self.watch_blocking {
                            block_hook::install(py, self.gate.clone(), idx);
                        }
                        let called = func.call(args.clone(), kwargs).map(drop);
                        if self.watch_blocking {
                            block_hook::uninstall(py);
                        }
                        line_tracer::uninstall(py);
                        called
                    });
                let error = outcome.err();
                let own = error.as_ref().is_some_and(|e| {
                    e.is_instance_of::<ScheduleAborted>(py)
                        || (self.gate.is_aborted() && e.is_instance_of::<TraceTimeoutError>(py))
                });
                self.gate.on_finish(idx, error, own);
            });
            // A panic in frontrun's own code fails the run with a normal
            // exception instead of killing the thread with a PanicException.
            if let Err(panic) = std::panic::catch_unwind(body) {
                let name = self.gate.lock().sched.name(idx).to_owned();
                self.gate.fail(Failure::Thread {
                    name,
                    err: crate::ffi_guard::internal_error(&panic),
                });
                self.gate.abort("frontrun hit an internal error");
            };
            Ok(())
        })
    }

    /// Join the run: raise its first failure, or a timeout describing where
    /// every thread stands.
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            let timeout = positive_duration(timeout, "timeout")?;
            {
                let mut st = self.gate.lock();
                if let Err(e) = st.sched.check_threads_known() {
                    drop(st);
                    self.gate.fail(Failure::Schedule(e));
                    self.gate
                        .abort("the schedule names a thread that was never started");
                    st = self.gate.lock();
                }
                drop(st);
            }
            self.gate.seal();
            let all_done = match self.gate.wait_all(py, timeout, UNWIND_GRACE) {
                Ok(done) => done,
                Err(interrupt) => {
                    self.gate.abort("TraceExecutor.wait was interrupted");
                    return Err(interrupt);
                }
            };
            let failure = self.gate.take_failure();
            if let Some(failure) = failure {
                return Err(failure_to_err(py, failure));
            }
            if all_done {
                return Ok(());
            }
            let msg = timeout_message(py, &self.gate, timeout);
            self.gate.abort("TraceExecutor.wait timed out");
            Err(TraceTimeoutError::new_err(msg))
        })
    }
}

fn positive_duration(secs: f64, what: &str) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if secs > 0.0 => Ok(d),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, got {secs}"
        ))),
    }
}

fn current_ident(py: Python<'_>) -> u64 {
    py.import("threading")
        .and_then(|m| m.getattr("get_ident")?.call0()?.extract::<u64>())
        .unwrap_or(0)
}

/// The file holding `func`'s code: functions, bound methods, partials.
fn source_file(py: Python<'_>, func: &Bound<'_, PyAny>) -> Option<String> {
    let mut obj = func.clone();
    for _ in 0..4 {
        if let Ok(code) = obj.getattr(pyo3::intern!(py, "__code__")) {
            return code.getattr("co_filename").ok()?.extract().ok();
        }
        obj = obj
            .getattr(pyo3::intern!(py, "__func__"))
            .or_else(|_| obj.getattr(pyo3::intern!(py, "func")))
            .ok()?;
    }
    None
}

fn failure_to_err(py: Python<'_>, failure: Failure) -> PyErr {
    match failure {
        Failure::Thread { name, err } => {
            let kind = err
                .get_type(py)
                .name()
                .map_or_else(|_| "exception".to_owned(), |n| n.to_string());
            let wrapped = ThreadFailedError::new_err(format!(
                "thread {name:?} raised {kind}: {}",
                err.value(py)
            ));
            let value = wrapped.value(py);
            // Attribute setting on a fresh exception instance cannot fail in
            // practice; ignoring the result keeps the original error intact.
            let _ = value.setattr("thread", &name);
            wrapped.set_cause(py, Some(err));
            wrapped
        }
        Failure::Schedule(e @ EngineScheduleError::DuplicateThread(_)) => {
            PyValueError::new_err(e.to_string())
        }
        Failure::Schedule(e) => ScheduleError::new_err(e.to_string()),
        Failure::MarkerNotFound {
            step,
            position,
            files,
        } => MarkerNotFoundError::new_err(format!(
            "marker {:?} of step {position} {step} appears in no traced source file, so \
             thread {:?} finished without reaching it. Add `# frontrun: {}` to the line \
             it should stop at, or fix the step. Files scanned: {}",
            step.marker,
            step.thread,
            step.marker,
            file_list(&files)
        )),
        Failure::Duplicate { file, dup } => DuplicateMarkerError::new_err(format!("{file}: {dup}")),
        Failure::ParkTimeout(msg) => TraceTimeoutError::new_err(msg),
        Failure::Deadlock(msg) => ScheduleDeadlockError::new_err(msg),
    }
}

fn file_list(files: &[String]) -> String {
    const SHOWN: usize = 12;
    if files.is_empty() {
        return "none".to_owned();
    }
    let mut out = files
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        out.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    out
}

/// The timeout report: the pending step and where each thread stands.
fn timeout_message(py: Python<'_>, gate: &MarkerGate, timeout: Duration) -> String {
    let (pending, threads) = {
        let st = gate.lock();
        let pending = match st.sched.pending() {
            Some((i, step)) => {
                let seen = st
                    .files
                    .values()
                    .flatten()
                    .any(|m| m.line_of(&step.marker).is_some());
                let note = if seen {
                    String::new()
                } else {
                    format!(
                        " (marker {:?} is in none of the {} files traced so far)",
                        step.marker,
                        st.files.len()
                    )
                };
                format!(
                    "pending step {} of {}: {step}{note}",
                    i + 1,
                    st.sched.steps().len()
                )
            }
            None => "schedule exhausted, threads running freely".to_owned(),
        };
        let threads: Vec<(String, String, Option<u64>, bool)> = (0..st.sched.thread_count())
            .map(|t| {
                (
                    st.sched.name(t).to_owned(),
                    describe_state(st.sched.state(t), st.paused_at[t].as_deref()),
                    st.idents[t],
                    st.paused_at[t].is_some(),
                )
            })
            .collect();
        (pending, threads)
    };
    let frames = py
        .import("sys")
        .and_then(|sys| sys.getattr("_current_frames")?.call0());
    let mut out = format!(
        "TraceExecutor.wait timed out after {:.1} s; {pending}.",
        timeout.as_secs_f64()
    );
    for (name, state, ident, paused) in threads {
        out.push_str(&format!("\n  {name}: {state}"));
        let stack = match (&frames, ident) {
            (Ok(frames), Some(ident)) => frames.get_item(ident).ok().map(|f| stack_summary(py, &f)),
            _ => None,
        };
        if let Some(stack) = stack.filter(|s| !s.is_empty() && !paused) {
            out.push_str(&format!("; at {stack}"));
        }
    }
    out.push_str(
        "\nThe thread holding the turn is probably blocked (a lock or database row lock \
         held by a paused thread, an event never set, a sleep), or it never reaches the \
         marker. The run was aborted.",
    );
    out
}

/// Markers of a source file, for tests and tools: `{name: line}`.
#[pyfunction]
pub fn scan_markers(path: &str) -> PyResult<Vec<(String, u32)>> {
    crate::ffi_guard::guard(|| match markers_of(path) {
        FileScan::Unreadable => Err(PyValueError::new_err(format!(
            "cannot read {path}; pass the path of a Python source file"
        ))),
        FileScan::NoMarkers => Ok(Vec::new()),
        FileScan::Markers(m) => Ok(pairs(&m)),
        FileScan::Duplicate(dup) => Err(DuplicateMarkerError::new_err(format!("{path}: {dup}"))),
    })
}

fn pairs(m: &FileMarkers) -> Vec<(String, u32)> {
    m.names()
        .into_iter()
        .filter_map(|n| Some((n.to_owned(), m.line_of(n)?)))
        .collect()
}

/// Register the classes, functions and exceptions in `_native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyMarkerGate>()?;
    m.add_function(wrap_pyfunction!(scan_markers, m)?)?;
    m.add("ScheduleError", py.get_type::<ScheduleError>())?;
    m.add("MarkerNotFoundError", py.get_type::<MarkerNotFoundError>())?;
    m.add(
        "DuplicateMarkerError",
        py.get_type::<DuplicateMarkerError>(),
    )?;
    m.add("TraceTimeoutError", py.get_type::<TraceTimeoutError>())?;
    m.add(
        "ScheduleDeadlockError",
        py.get_type::<ScheduleDeadlockError>(),
    )?;
    m.add("ThreadFailedError", py.get_type::<ThreadFailedError>())?;
    m.add("ScheduleAborted", py.get_type::<ScheduleAborted>())?;
    Ok(())
}
