//! The text that reports a systematic search's first divergence: which
//! thread, which step, what it was expected to do and what it did instead,
//! named by object and source line, so the user can find the state that
//! outlived an execution.

use frontrun_engine::event::{Access, Event};
use frontrun_engine::strategy::Divergence;
use pyo3::prelude::*;

use crate::tracer;

/// One event as `write Registry.ready at app.py:12 (ensure_ready)`, naming
/// `focus` (the access that differed) when given.
fn event_text(py: Python<'_>, ev: &Event, focus: Option<&Access>) -> String {
    let what = focus.or_else(|| ev.accesses.first()).map_or_else(
        || "a step with no shared access".to_string(),
        tracer::describe_access,
    );
    match tracer::site_location(py, ev.site) {
        Some(at) => format!("{what} at {}:{} ({})", at.file, at.line, at.function),
        None => what,
    }
}

/// The first access of `a` that `b` does not have.
fn first_missing<'e>(a: &'e Event, b: &Event) -> Option<&'e Access> {
    a.accesses.iter().find(|x| !b.accesses.contains(x))
}

/// A note for the explanation of a result whose search diverged.
pub fn divergence_text(py: Python<'_>, d: &Divergence) -> String {
    let expected = event_text(py, &d.expected, None);
    let found = match &d.found {
        Some(ev) => {
            let focus = first_missing(ev, &d.expected);
            let expected_focus = first_missing(&d.expected, ev);
            let expected = event_text(py, &d.expected, expected_focus);
            let mut now = event_text(py, ev, focus);
            if now == expected {
                // Same type, name and line: another object of that type
                // (an order that depends on addresses, say).
                now.push_str(", on another object of that type");
            }
            return note(d, &expected, &format!("it did: {now}"));
        }
        None => "it could not run (blocked or finished)".to_string(),
    };
    note(d, &expected, &found)
}

fn note(d: &Divergence, expected: &str, found: &str) -> String {
    format!(
        "Divergence: execution {} did not repeat the steps an earlier execution recorded. \
         At step {}, thread {} was expected to {expected}, but {found}. State that \
         outlives an execution (a module global, a class attribute, a cache, lazy \
         initialisation inside a library) makes later executions run a different \
         program: create it in setup() or reset it there.\n",
        d.execution, d.step, d.thread
    )
}
