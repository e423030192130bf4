//! The seam between the opcode tracer and whatever consumes its events.
//!
//! The tracer (`tracer/`) turns opcodes into engine [`Event`]s and hands them
//! to the sink installed on the *current thread*. The DPOR driver installs a
//! sink that parks the thread until the strategy schedules it; tests install
//! one that records. Neither side knows the other.

use std::cell::RefCell;

use frontrun_engine::event::Event;
use pyo3::prelude::*;

/// Receives the events of one thread. Called with the GIL held, *before* the
/// access executes; it may release the GIL and park the thread.
pub trait EventSink {
    /// `Err` aborts the thread: the tracer returns -1 so the exception unwinds
    /// the user's code.
    fn on_event(&mut self, py: Python<'_>, event: Event) -> PyResult<()>;
}

thread_local! {
    static SINK: RefCell<Option<Box<dyn EventSink>>> = const { RefCell::new(None) };
}

/// Install `sink` on the current thread, returning the previous one.
pub fn set_sink(sink: Option<Box<dyn EventSink>>) -> Option<Box<dyn EventSink>> {
    SINK.with(|s| s.replace(sink))
}

/// Whether the current thread has a sink (the tracer skips all work if not).
pub fn has_sink() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Deliver an event to the current thread's sink; a no-op without one.
pub fn emit(py: Python<'_>, event: Event) -> PyResult<()> {
    SINK.with(|s| match s.borrow_mut().as_mut() {
        Some(sink) => sink.on_event(py, event),
        None => Ok(()),
    })
}
