//! Test and benchmark hooks exposed to Python as `_native._trace_*`.

use std::sync::{Arc, Mutex};

use frontrun_engine::event::{AccessKind, Event};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::key_text::key_text;
use super::{install, registry, site_location, supported, uninstall};
use crate::hooks::{self, EventSink};

/// Add the `_trace_*` hooks not listed in `lib.rs` (`_trace_record`,
/// `_trace_count`, `_trace_describe`, `_trace_events` and
/// `_tracer_supported` are added there).
pub fn register(m: &Bound<'_, pyo3::types::PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_trace_fail_at, m)?)?;
    m.add_function(wrap_pyfunction!(_trace_begin, m)?)?;
    m.add_function(wrap_pyfunction!(_trace_thread, m)?)?;
    m.add_function(wrap_pyfunction!(_trace_end, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_cache_sizes, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_cache_bounds, m)?)?;
    m.add_function(wrap_pyfunction!(_tracer_self_check, m)?)?;
    Ok(())
}

/// The tracer's thorough self-check: the frame layout against the public
/// API and, on 3.11, the static stack-depth analysis against the live depth
/// over a standard-library workload (`depths` replaces the analysis, to
/// show the check catches a wrong one). Returns `(code objects, opcode
/// events)` compared, `(0, 0)` where only the layout can be checked.
#[pyfunction]
#[pyo3(signature = (depths = None))]
pub fn _tracer_self_check(
    py: Python<'_>,
    depths: Option<Bound<'_, PyAny>>,
) -> PyResult<(usize, u64)> {
    crate::ffi_guard::guard(|| {
        super::interp::self_check().map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
        if !super::interp::DEPTHS_COMPARABLE {
            return Ok((0, 0));
        }
        let report = super::interp::check_stack_depths(py, depths)?;
        Ok((report.codes, report.events))
    })
}

/// `(code objects, this thread's code objects, key texts, type names,
/// this thread's callees)`: the current sizes of the tracer's caches.
#[pyfunction]
pub fn _tracer_cache_sizes() -> PyResult<(usize, usize, usize, usize, usize)> {
    crate::ffi_guard::guard(|| {
        Ok({
            (
                super::code::cached_count(),
                super::trace::thread_cached_count(),
                super::key_text::key_count(),
                registry::type_name_count(),
                super::callee::cached_count(),
            )
        })
    })
}

/// The bounds of the caches, in the order of `_tracer_cache_sizes`.
#[pyfunction]
pub fn _tracer_cache_bounds() -> PyResult<(usize, usize, usize, usize, usize)> {
    crate::ffi_guard::guard(|| {
        Ok({
            (
                super::code::MAX_CODES,
                super::code::MAX_CODES,
                super::key_text::MAX_KEYS,
                registry::MAX_TYPE_NAMES,
                super::callee::MAX_CACHED,
            )
        })
    })
}

struct EventRecorder(Arc<Mutex<Vec<Event>>>);

impl EventSink for EventRecorder {
    fn on_event(&mut self, _py: Python<'_>, event: Event) -> PyResult<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        Ok(())
    }
}

/// Refuses the `n`-th event (0-based), as a driver does to abort a thread.
struct FailAt(u64);

impl EventSink for FailAt {
    fn on_event(&mut self, _py: Python<'_>, _event: Event) -> PyResult<()> {
        if self.0 == 0 {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "sink refused the event",
            ));
        }
        self.0 -= 1;
        Ok(())
    }
}

struct Counter(Arc<Mutex<u64>>);

impl EventSink for Counter {
    fn on_event(&mut self, _py: Python<'_>, _event: Event) -> PyResult<()> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }
}

/// Register `roots`, trace `f()` on this thread into `sink`, then undo all.
fn traced(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
    sink: Box<dyn EventSink>,
) -> PyResult<()> {
    registry::begin_execution(py);
    for r in roots.iter() {
        registry::add_root(py, &r);
    }
    let previous = hooks::set_sink(Some(sink));
    let result = install(py).and_then(|()| {
        let r = f.call0();
        uninstall(py);
        r
    });
    hooks::set_sink(previous);
    result.map(drop)
}

/// `_trace_record(fn, roots)`: the accesses `fn()` makes to shared state, as
/// `(kind, owner type, key, line)`; the key is an attribute name, an item
/// repr or `*`.
#[pyfunction]
pub fn _trace_record(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
) -> PyResult<Vec<(String, String, String, u32)>> {
    crate::ffi_guard::guard(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let run = traced(py, f, roots, Box::new(EventRecorder(events.clone())));
        let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::new();
        for e in &events {
            for a in &e.accesses {
                let kind = match a.kind {
                    AccessKind::Read => "read",
                    AccessKind::Write => "write",
                    _ => "other",
                };
                let owner = registry::type_name(a.obj).unwrap_or_default();
                let line = site_location(py, e.site).map_or(0, |s| s.line);
                out.push((kind.to_string(), owner, key_text(a.key), line));
            }
        }
        registry::end_execution(py);
        run.map(|()| out)
    })
}

/// `_trace_count(fn, roots)`: how many events `fn()` produced (for benches).
#[pyfunction]
pub fn _trace_count(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
) -> PyResult<u64> {
    crate::ffi_guard::guard(|| {
        let n = Arc::new(Mutex::new(0));
        let run = traced(py, f, roots, Box::new(Counter(n.clone())));
        registry::end_execution(py);
        run?;
        let count = *n.lock().unwrap_or_else(|e| e.into_inner());
        Ok(count)
    })
}

/// `_trace_describe(fn, roots)`: `describe_access` of each access, with the
/// site's function name, as `(description, function)`.
#[pyfunction]
pub fn _trace_describe(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
) -> PyResult<Vec<(String, String)>> {
    crate::ffi_guard::guard(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let run = traced(py, f, roots, Box::new(EventRecorder(events.clone())));
        let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
        let out = events
            .iter()
            .flat_map(|e| {
                let func = site_location(py, e.site)
                    .map(|s| s.function)
                    .unwrap_or_default();
                e.accesses
                    .iter()
                    .map(move |a| (super::describe_access(a), func.clone()))
            })
            .collect();
        registry::end_execution(py);
        run.map(|()| out)
    })
}

/// `_tracer_supported()`: whether this interpreter can be traced.
#[pyfunction]
pub fn _tracer_supported() -> PyResult<bool> {
    crate::ffi_guard::guard(|| Ok(supported()))
}

/// `_trace_events(fn, roots)`: `(kind, object id, key)` per access, to check
/// that ids are stable across executions.
#[pyfunction]
pub fn _trace_events(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
) -> PyResult<Vec<(String, u64, String)>> {
    crate::ffi_guard::guard(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let run = traced(py, f, roots, Box::new(EventRecorder(events.clone())));
        let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
        registry::end_execution(py);
        run?;
        Ok(access_rows(&events))
    })
}

/// `_trace_fail_at(fn, roots, n)`: trace `fn()` with a sink that refuses the
/// `n`-th access (0-based); the sink's error propagates out of `fn`.
#[pyfunction]
pub fn _trace_fail_at(
    py: Python<'_>,
    f: &Bound<'_, PyAny>,
    roots: &Bound<'_, PyList>,
    n: u64,
) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        let run = traced(py, f, roots, Box::new(FailAt(n)));
        registry::end_execution(py);
        run
    })
}

/// `_trace_begin(roots)`: start an execution with `roots` shared (for tests
/// that trace several threads with `_trace_thread`).
#[pyfunction]
pub fn _trace_begin(py: Python<'_>, roots: &Bound<'_, PyList>) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        registry::begin_execution(py);
        for r in roots.iter() {
            registry::add_root(py, &r);
        }
        Ok(())
    })
}

/// Every access of `events` as (kind, object, key) rows, for the tests.
fn access_rows(events: &[Event]) -> Vec<(String, u64, String)> {
    events
        .iter()
        .flat_map(|e| e.accesses.iter())
        .map(|a| {
            (
                format!("{:?}", a.kind).to_lowercase(),
                a.obj,
                key_text(a.key),
            )
        })
        .collect()
}

/// `_trace_thread(fn)`: trace `fn()` on the calling thread within the
/// current execution; `(kind, object id, key)` per access.
#[pyfunction]
pub fn _trace_thread(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<Vec<(String, u64, String)>> {
    crate::ffi_guard::guard(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let previous = hooks::set_sink(Some(Box::new(EventRecorder(events.clone()))));
        let result = install(py).and_then(|()| {
            let r = f.call0();
            uninstall(py);
            r
        });
        hooks::set_sink(previous);
        result?;
        let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(access_rows(&events))
    })
}

/// `_trace_end()`: end the execution started by `_trace_begin`.
#[pyfunction]
pub fn _trace_end(py: Python<'_>) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        registry::end_execution(py);
        Ok(())
    })
}
