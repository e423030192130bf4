//! Where each explored thread stands when an execution stalls: the text a
//! timeout or a stuck thread is reported with.

use std::collections::HashMap;

use frontrun_engine::turns::Loc;
use pyo3::prelude::*;

/// Where each unfinished thread is: the innermost frame of the user's code
/// of a thread running code (found through `sys._current_frames`), and the
/// real lock it waits for if it is blocked on one; else its last
/// scheduling point.
///
/// From what the gate reports: the (name, OS ident) of each running thread
/// and each thread's last scheduling point.
pub fn where_threads_are(
    py: Python<'_>,
    running: Vec<(String, u64)>,
    positions: Vec<(String, Option<Loc>)>,
) -> String {
    let frames = py
        .import("sys")
        .and_then(|sys| sys.call_method0("_current_frames"))
        .ok();
    let linecache = py.import("linecache").ok();
    let awaited = py
        .import("frontrun._lock_calls")
        .and_then(|m| m.getattr("awaited_real_lock"))
        .ok();
    let running: HashMap<String, u64> = running.into_iter().collect();
    let thread_name = |ident: u64| -> String {
        // An explored thread by its own name, not its worker's.
        if let Some((n, _)) = running.iter().find(|(_, &i)| i == ident) {
            return n.clone();
        }
        py.import("threading")
            .and_then(|t| t.getattr("_active"))
            .and_then(|a| a.get_item(ident))
            .and_then(|t| t.getattr("name"))
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| format!("ident {ident}"))
    };
    let user_at = |ident: u64| -> Option<String> {
        let innermost = frames.as_ref()?.get_item(ident).ok()?;
        let (loc, _) = crate::tracer::user_loc_from(py, innermost)?;
        Some(format!(
            "{}:{} in {}",
            short_path(&loc.file),
            loc.line,
            loc.function
        ))
    };
    type Awaited = (String, String, Option<u64>, usize, Option<(u64, String)>);
    let lock_text = |(expr, kind, owner, addr, holder): Awaited| -> String {
        let what = format!(
            "it waits for `{expr}`, a threading.{kind} created outside setup() \
             (a real lock: frontrun does not schedule it)"
        );
        if let Some(site) = super::real_locks::site_of(addr) {
            return format!("{what}, acquired by setup() at {site} and not released");
        }
        if let Some((ident, site)) = holder {
            let now = user_at(ident).map_or_else(String::new, |at| format!(", now at {at}"));
            return format!(
                "{what}, held by thread '{}' inside its `with` at {site}{now}",
                thread_name(ident)
            );
        }
        match owner {
            Some(o) => {
                let now = user_at(o).map_or_else(String::new, |at| format!(", now at {at}"));
                format!("{what}, held by thread '{}'{now}", thread_name(o))
            }
            None => format!(
                "{what}; it is held, and a plain Lock does not record by whom: \
                 setup() did not take it, so it was acquired before the \
                 exploration, by another thread, or by an explored thread (see \
                 where each one is); create it in setup() to explore it"
            ),
        }
    };
    let live = |ident: u64| -> Option<String> {
        let innermost = frames.as_ref()?.get_item(ident).ok()?;
        let (loc, frame) = crate::tracer::user_loc_from(py, innermost.clone())?;
        let source = linecache
            .as_ref()
            .and_then(|lc| lc.call_method1("getline", (&loc.file, loc.line)).ok())
            .and_then(|s| s.extract::<String>().ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut at = format!(
            "{}:{} in {}: {source}",
            short_path(&loc.file),
            loc.line,
            loc.function
        );
        // Only the innermost frame can be the one blocked in a lock's
        // acquire (a C call has no frame of its own).
        if frame.is(&innermost) {
            if let Some(text) = awaited
                .as_ref()
                .and_then(|f| f.call1((frame,)).ok())
                .and_then(|t| t.extract::<Option<Awaited>>().ok().flatten())
            {
                at = format!("{at}\n    {}", lock_text(text));
            }
        }
        Some(at)
    };
    positions
        .into_iter()
        .map(|(n, l)| match (running.get(&n).and_then(|&i| live(i)), l) {
            (Some(at), _) => format!("  thread '{n}' is running at {at}"),
            (None, Some(l)) => format!("  thread '{n}' last seen at {}:{}", l.file, l.line),
            (None, None) => format!("  thread '{n}' (no cooperative operation seen)"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file name of a path, as explanations show it.
pub fn short_path(f: &str) -> &str {
    f.rsplit('/').next().unwrap_or(f)
}
