//! The seam between the opcode tracer and whatever consumes its events.
//!
//! The tracer (`tracer/`) turns opcodes into engine [`Event`]s and hands them
//! to the sink installed on the *current thread*. The DPOR driver installs a
//! sink that parks the thread until the strategy schedules it; tests install
//! one that records. Neither side knows the other.

use std::cell::RefCell;

use frontrun_engine::event::Event;
use frontrun_engine::turns::Loc;
use pyo3::prelude::*;

/// Receives the events of one thread. Called with the GIL held, *before* the
/// access executes; it may release the GIL and park the thread.
pub trait EventSink {
    /// `Err` aborts the thread: the tracer returns -1 so the exception unwinds
    /// the user's code.
    fn on_event(&mut self, py: Python<'_>, event: Event) -> PyResult<()>;

    /// [`on_event`](Self::on_event) for an event whose site is not the
    /// user's code: `loc` is where the user's code stands.
    fn on_event_at(&mut self, py: Python<'_>, event: Event, loc: Option<Loc>) -> PyResult<()> {
        let _ = loc;
        self.on_event(py, event)
    }
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
///
/// The sink is taken out of the thread-local for the call: a sink may
/// switch greenlets (the coroutine substrate), and the greenlet resumed
/// meanwhile delivers events to its own sink on the same OS thread.
pub fn emit(py: Python<'_>, event: Event) -> PyResult<()> {
    emit_at(py, event, None)
}

/// [`emit`], with where the user's code stands when the event's own site
/// is inside a library.
pub fn emit_at(py: Python<'_>, event: Event, loc: Option<Loc>) -> PyResult<()> {
    let Some(mut sink) = SINK.with(|s| s.borrow_mut().take()) else {
        return Ok(());
    };
    let r = match loc {
        Some(loc) => sink.on_event_at(py, event, Some(loc)),
        None => sink.on_event(py, event),
    };
    SINK.with(|s| {
        let mut slot = s.borrow_mut();
        // A sink installed during the call (none is, today) wins.
        if slot.is_none() {
            *slot = Some(sink);
        }
    });
    r
}
