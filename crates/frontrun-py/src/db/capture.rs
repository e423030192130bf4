//! A recording event sink, so tests can see what a thread emits without an
//! exploration driver.

use std::sync::{Arc, Mutex};

use frontrun_engine::event::{AccessKind, Event, Key};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::hooks::{self, EventSink};

type Log = Arc<Mutex<Vec<Event>>>;

struct DbRecorder(Log);

impl EventSink for DbRecorder {
    fn on_event(&mut self, _py: Python<'_>, event: Event) -> PyResult<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        Ok(())
    }
}

thread_local! {
    static LOG: std::cell::RefCell<Option<Log>> = const { std::cell::RefCell::new(None) };
}

/// Install a recording sink on the current thread (test hook). Fails if the
/// thread already has a sink, so a driver's sink is never replaced.
#[pyfunction]
pub fn _db_capture_start() -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        if hooks::has_sink() {
            return Err(PyRuntimeError::new_err(
                "this thread already has an event sink (is it an explored thread?)",
            ));
        }
        let log: Log = Arc::default();
        hooks::set_sink(Some(Box::new(DbRecorder(log.clone()))));
        LOG.with(|l| *l.borrow_mut() = Some(log));
        Ok(())
    })
}

/// One captured event: `(site, [(object, key or None, kind)…])`.
type PyEvent = (u64, Vec<(u64, Option<u64>, &'static str)>);

/// Remove the recording sink and return what it received.
#[pyfunction]
pub fn _db_capture_stop() -> PyResult<Vec<PyEvent>> {
    crate::ffi_guard::guard(|| {
        let Some(log) = LOG.with(|l| l.borrow_mut().take()) else {
            return Err(PyRuntimeError::new_err(
                "_db_capture_stop without _db_capture_start on this thread",
            ));
        };
        hooks::set_sink(None);
        let events = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(events
            .into_iter()
            .map(|e| {
                let acc = e
                    .accesses
                    .iter()
                    .map(|a| {
                        let key = match a.key {
                            Key::Any => None,
                            Key::Exact(k) => Some(k),
                        };
                        let kind = match a.kind {
                            AccessKind::Read => "read",
                            AccessKind::Write => "write",
                            AccessKind::Acquire => "acquire",
                            AccessKind::Release => "release",
                            _ => "other",
                        };
                        (a.obj, key, kind)
                    })
                    .collect();
                (e.site, acc)
            })
            .collect())
    })
}
