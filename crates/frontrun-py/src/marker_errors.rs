//! The exceptions of trace-marker runs, and where a thread stands, for their
//! messages: shared by the class (`py_trace_markers`) and the tracers that
//! raise them (`line_tracer`, `block_hook`).

use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;

use crate::marker_gate::Stop;

pyo3::create_exception!(
    frontrun.trace_markers,
    ScheduleError,
    PyRuntimeError,
    "A trace-marker schedule cannot be completed."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    MarkerNotFoundError,
    ScheduleError,
    "A step names a marker that appears in no traced source file."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    DuplicateMarkerError,
    ScheduleError,
    "A source file uses the same marker name twice."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    ScheduleDeadlockError,
    ScheduleError,
    "No thread of a trace-marker run can take the turn: the blocked ones wait for paused ones."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    TraceTimeoutError,
    PyTimeoutError,
    "A trace-marker run did not finish in time."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    ThreadFailedError,
    PyRuntimeError,
    "A thread of a trace-marker run raised; the original is the __cause__."
);
pyo3::create_exception!(
    frontrun.trace_markers,
    ScheduleAborted,
    PyBaseException,
    "Raised inside a run's threads to unwind them after the run failed."
);

/// `file:line (function)` of the innermost frames, innermost first, down to
/// the first frame outside the standard library (the user's line).
pub(crate) fn stack_summary(py: Python<'_>, frame: &Bound<'_, PyAny>) -> String {
    const MAX_FRAMES: usize = 6;
    let stdlib: Vec<String> = py
        .import("sysconfig")
        .and_then(|m| {
            let paths = m.getattr("get_paths")?.call0()?;
            Ok(["stdlib", "platstdlib"]
                .iter()
                .filter_map(|k| paths.get_item(k).ok()?.extract::<String>().ok())
                .collect())
        })
        .unwrap_or_default();
    let mut parts = Vec::new();
    let mut f = frame.clone();
    while parts.len() < MAX_FRAMES && !f.is_none() {
        let line: i64 = f
            .getattr(pyo3::intern!(py, "f_lineno"))
            .and_then(|l| l.extract())
            .unwrap_or(0);
        let (file, func) = f
            .getattr(pyo3::intern!(py, "f_code"))
            .and_then(|c| {
                Ok((
                    c.getattr("co_filename")?.extract::<String>()?,
                    c.getattr("co_name")?.extract::<String>()?,
                ))
            })
            .unwrap_or_default();
        parts.push(format!("{file}:{line} ({func})"));
        let in_stdlib = stdlib.iter().any(|p| file.starts_with(p.as_str()));
        if !in_stdlib {
            break;
        }
        match f.getattr(pyo3::intern!(py, "f_back")) {
            Ok(back) => f = back,
            Err(_) => break,
        }
    }
    parts.join(" <- ")
}

/// The exception that unwinds a thread of an aborted run.
pub fn abort_error(reason: &str) -> PyErr {
    ScheduleAborted::new_err(format!("trace-marker run aborted: {reason}"))
}

/// The exception a thread raises when the gate stops it.
pub fn stop_error(stop: Stop) -> PyErr {
    match stop {
        Stop::Aborted(reason) => abort_error(&reason),
        Stop::ParkTimeout(msg) => TraceTimeoutError::new_err(msg),
        Stop::Listener(err) => err,
    }
}
