//! From the trace of a failing execution to a human explanation: the
//! interleaved source lines around the conflicting accesses and the kind of
//! bug they show.

use std::fmt::Write as _;

use crate::event::{Access, AccessKind, Key, ObjId, ThreadId};

/// One executed event, as the driver describes it.
#[derive(Clone, Debug, Default)]
pub struct TraceLine {
    pub tid: ThreadId,
    pub thread: String,
    pub accesses: Vec<Access>,
    /// What the event did, in words (`read Counter.value`, `acquire Lock`).
    pub description: String,
    /// `file:line`, when known.
    pub location: Option<String>,
    /// The stripped source text of that line, when available.
    pub source: Option<String>,
    /// What the event touched, in words, when `description` does not start
    /// with it (a SQL statement's rows: `read counts[*]`).
    pub subject: Option<String>,
}

/// What kind of concurrency bug a failing trace shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BugKind {
    /// Two threads read a value, then both wrote it: one update is lost.
    LostUpdate,
    /// A thread acted (wrote elsewhere) on a value another thread had
    /// already overwritten.
    StaleRead,
    /// Two threads wrote the same location, neither having read it.
    WriteWrite,
    /// Conflicting accesses ran in an order the code did not expect.
    OrderViolation,
    /// Threads wait for one another in a cycle.
    Deadlock,
    /// No conflicting shared access between threads was seen.
    Unknown,
}

impl BugKind {
    pub fn name(self) -> &'static str {
        match self {
            BugKind::LostUpdate => "lost update",
            BugKind::StaleRead => "stale read",
            BugKind::WriteWrite => "write-write race",
            BugKind::OrderViolation => "order violation",
            BugKind::Deadlock => "deadlock",
            BugKind::Unknown => "unclassified",
        }
    }
}

type Loc = (ObjId, Key);

fn data(a: &Access) -> Option<(Loc, bool)> {
    match a.kind {
        AccessKind::Read => Some(((a.obj, a.key), false)),
        AccessKind::Write => Some(((a.obj, a.key), true)),
        _ => None,
    }
}

/// (index, thread, location, is_write) of every data access, in order.
fn flat(lines: &[TraceLine]) -> Vec<(usize, ThreadId, Loc, bool)> {
    lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.accesses
                .iter()
                .filter_map(move |a| data(a).map(|(loc, w)| (i, l.tid, loc, w)))
        })
        .collect()
}

fn overlaps(a: Loc, b: Loc) -> bool {
    a.0 == b.0 && a.1.overlaps(b.1)
}

/// The bug the trace shows, and the location (object, key) it is about.
pub fn classify(lines: &[TraceLine], deadlock: bool) -> (BugKind, Option<usize>) {
    if deadlock {
        return (BugKind::Deadlock, None);
    }
    let acc = flat(lines);
    // Lost update: A and B each read x before the other's later write of x,
    // and both write it.
    let write_after = |t: ThreadId, x: Loc, from: usize| {
        acc.iter()
            .enumerate()
            .skip(from + 1)
            .find(|&(_, &(_, tt, xx, w))| tt == t && w && overlaps(xx, x))
            .map(|(k, _)| k)
    };
    for (i, &(_, ta, xa, wa)) in acc.iter().enumerate() {
        if wa {
            continue;
        }
        let Some(k) = write_after(ta, xa, i) else {
            continue;
        };
        for (j, &(_, tb, xb, wb)) in acc.iter().enumerate() {
            if wb || tb == ta || !overlaps(xa, xb) || j > k {
                continue;
            }
            if write_after(tb, xa, j).is_some_and(|l| l > i) {
                return (BugKind::LostUpdate, Some(acc[i].0));
            }
        }
    }
    // Stale read: A reads x, B writes x, then A writes something else.
    for (ia, &(_, ta, xa, wa)) in acc.iter().enumerate() {
        if wa {
            continue;
        }
        let later = &acc[ia + 1..];
        if let Some(pb) = later
            .iter()
            .position(|&(_, t, x, w)| t != ta && w && overlaps(x, xa))
        {
            if later[pb + 1..]
                .iter()
                .any(|&(_, t, x, w)| t == ta && w && !overlaps(x, xa))
            {
                return (BugKind::StaleRead, Some(acc[ia].0));
            }
        }
    }
    let pair = |both_write: bool| {
        acc.iter().enumerate().find_map(|(ia, &(i, ta, xa, wa))| {
            acc[ia + 1..]
                .iter()
                .any(|&(_, tb, xb, wb)| {
                    tb != ta && overlaps(xa, xb) && if both_write { wa && wb } else { wa || wb }
                })
                .then_some(i)
        })
    };
    if let Some(i) = pair(true) {
        return (BugKind::WriteWrite, Some(i));
    }
    if let Some(i) = pair(false) {
        return (BugKind::OrderViolation, Some(i));
    }
    (BugKind::Unknown, None)
}

/// Indices of lines with an access that conflicts with another thread's,
/// and of synchronisation steps described only in words (no accesses: a
/// wake-up, a notify), which explain how the threads handed over.
pub fn conflicting(lines: &[TraceLine]) -> Vec<usize> {
    (0..lines.len())
        .filter(|&i| {
            lines[i].accesses.is_empty() && !lines[i].description.is_empty()
                || lines[i].accesses.iter().any(|a| {
                    lines
                        .iter()
                        .any(|o| o.tid != lines[i].tid && o.accesses.iter().any(|b| a.conflicts(b)))
                })
        })
        .collect()
}

const MAX_LINES: usize = 60;

/// The interleaving, one line per event, restricted to the conflicting
/// accesses when there are any. Consecutive events of one thread on the same
/// source line are merged.
pub fn render_trace(lines: &[TraceLine]) -> String {
    let mut keep = conflicting(lines);
    if keep.is_empty() {
        keep = (0..lines.len()).collect();
    }
    let skipped = keep.len().saturating_sub(MAX_LINES);
    let keep = &keep[skipped..];
    let width = keep
        .iter()
        .map(|&i| lines[i].thread.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if skipped > 0 {
        let _ = writeln!(out, "  ... {skipped} earlier lines omitted");
    }
    let mut k = 0;
    while k < keep.len() {
        let first = &lines[keep[k]];
        let mut what = vec![first.description.clone()];
        let mut j = k + 1;
        while j < keep.len()
            && lines[keep[j]].tid == first.tid
            && lines[keep[j]].location == first.location
            && keep[j] == keep[j - 1] + 1
        {
            what.push(lines[keep[j]].description.clone());
            j += 1;
        }
        let loc = first.location.as_deref().unwrap_or("?");
        let src = first.source.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "  {:width$} | {loc:<24} {src:<40} [{}]",
            first.thread,
            what.join(", ")
        );
        k = j;
    }
    out
}

/// A short paragraph naming the bug and the object involved.
pub fn summary(kind: BugKind, lines: &[TraceLine], at: Option<usize>) -> String {
    let subject = at
        .and_then(|i| lines.get(i))
        .map(|l| {
            let what = l.subject.as_ref().unwrap_or(&l.description);
            what.split_once(' ')
                .map_or(what.clone(), |(_, s)| s.to_string())
        })
        .unwrap_or_default();
    match kind {
        BugKind::LostUpdate => format!(
            "lost update on {subject}: two threads read it, then both wrote it, so one write overwrote the other's update"
        ),
        BugKind::StaleRead => format!(
            "stale read of {subject}: a thread acted on a value that another thread had already changed"
        ),
        BugKind::WriteWrite => format!(
            "write-write race on {subject}: two threads wrote it and the last write wins"
        ),
        BugKind::OrderViolation => format!(
            "order violation on {subject}: a read and a write of it ran in an order the code does not handle"
        ),
        BugKind::Deadlock => "deadlock: threads wait for each other in a cycle".into(),
        BugKind::Unknown => "no conflicting shared access between threads was recorded".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tid: ThreadId, kind: AccessKind, obj: ObjId, key: u64) -> TraceLine {
        let a = Access {
            obj,
            key: Key::Exact(key),
            kind,
        };
        let verb = match kind {
            AccessKind::Read => "read",
            _ => "write",
        };
        TraceLine {
            tid,
            thread: format!("t{tid}"),
            accesses: vec![a],
            description: format!("{verb} Counter.value#{obj}.{key}"),
            location: Some(format!("app.py:{}", 10 + tid)),
            source: Some("t = self.value".into()),
            subject: None,
        }
    }

    use AccessKind::{Read, Write};

    #[test]
    fn lost_update_is_recognised() {
        let t = vec![
            line(0, Read, 1, 1),
            line(1, Read, 1, 1),
            line(0, Write, 1, 1),
            line(1, Write, 1, 1),
        ];
        let (k, at) = classify(&t, false);
        assert_eq!(k, BugKind::LostUpdate);
        assert!(summary(k, &t, at).contains("Counter.value#1.1"));
    }

    #[test]
    fn serial_trace_is_not_a_lost_update() {
        let t = vec![
            line(0, Read, 1, 1),
            line(0, Write, 1, 1),
            line(1, Read, 1, 1),
            line(1, Write, 1, 1),
        ];
        assert_eq!(classify(&t, false).0, BugKind::WriteWrite);
    }

    #[test]
    fn stale_read_then_acting_elsewhere() {
        let t = vec![
            line(0, Read, 1, 1),
            line(1, Write, 1, 1),
            line(0, Write, 2, 5),
        ];
        assert_eq!(classify(&t, false).0, BugKind::StaleRead);
    }

    #[test]
    fn read_before_init_is_an_order_violation() {
        let t = vec![line(1, Read, 3, 1), line(0, Write, 3, 1)];
        assert_eq!(classify(&t, false).0, BugKind::OrderViolation);
    }

    #[test]
    fn deadlock_and_unrelated_accesses() {
        assert_eq!(classify(&[], true).0, BugKind::Deadlock);
        let t = vec![line(0, Write, 1, 1), line(1, Write, 2, 1)];
        assert_eq!(classify(&t, false).0, BugKind::Unknown);
    }

    #[test]
    fn render_focuses_on_conflicts_and_merges_lines() {
        let mut t = vec![
            line(0, Read, 1, 1),
            line(0, Write, 9, 9),
            line(1, Read, 1, 1),
            line(1, Write, 1, 1),
            line(0, Write, 1, 1),
        ];
        t[1].location = Some("other.py:1".into());
        let text = render_trace(&t);
        assert!(!text.contains("other.py"), "{text}");
        assert!(text.contains("[read Counter.value#1.1]"), "{text}");
        assert!(
            text.contains("[read Counter.value#1.1, write Counter.value#1.1]"),
            "{text}"
        );
    }

    #[test]
    fn subject_names_the_data_when_the_description_is_a_statement() {
        let mut l = line(0, AccessKind::Read, 1, 1);
        l.description = "Txn A | SELECT counter FROM counts → 0".into();
        l.subject = Some("read counts[*]".into());
        let text = summary(BugKind::LostUpdate, &[l], Some(0));
        assert!(text.starts_with("lost update on counts[*]:"), "{text}");
    }
}
