//! Naming the isolation anomaly a failing execution shows, from the
//! statements each transaction ran (Adya's definitions, on the rows the
//! footprints name).

use crate::{AccessMode, Footprint, Rows, TableAccess, TxnControl};

/// One applied statement of an execution, in the order they ran.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub txn: u64,
    pub fp: Footprint,
}

/// An anomaly between two committed transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// `lost update`, `read skew`, `write skew` or `predicate write skew`.
    pub kind: &'static str,
    pub first: u64,
    pub second: u64,
    /// The rows involved, as footprint descriptions.
    pub detail: String,
}

struct TxnView<'a> {
    id: u64,
    reads: Vec<(usize, &'a TableAccess)>,
    writes: Vec<(usize, &'a TableAccess)>,
    commit: usize,
}

fn base(t: &str) -> &str {
    t.rsplit('.').next().unwrap_or(t)
}

fn overlap(a: &TableAccess, b: &TableAccess) -> bool {
    base(&a.table) == base(&b.table) && a.rows.overlaps(&b.rows)
}

fn show(a: &TableAccess) -> String {
    let mut fp = Footprint::default();
    fp.accesses.push(TableAccess {
        lock: None,
        mode: AccessMode::Read,
        ..a.clone()
    });
    fp.describe().trim_start_matches("read ").to_string()
}

fn committed(log: &[LogEntry]) -> Vec<TxnView<'_>> {
    let mut ids: Vec<u64> = log.iter().map(|e| e.txn).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let mut t = TxnView {
            id,
            reads: Vec::new(),
            writes: Vec::new(),
            commit: usize::MAX,
        };
        for (pos, e) in log.iter().enumerate().filter(|(_, e)| e.txn == id) {
            if e.fp.txn.contains(&TxnControl::Commit) {
                t.commit = pos;
            }
            if e.fp.txn.contains(&TxnControl::Rollback) {
                t.commit = usize::MAX;
                t.reads.clear();
                t.writes.clear();
            }
            for a in &e.fp.accesses {
                match a.mode {
                    AccessMode::Read => t.reads.push((pos, a)),
                    AccessMode::Write => t.writes.push((pos, a)),
                }
            }
        }
        if t.commit != usize::MAX {
            out.push(t);
        }
    }
    out
}

/// A row `t` read before `u` committed and that `u` wrote.
fn anti_dependency<'a>(t: &TxnView<'a>, u: &TxnView<'a>) -> Option<&'a TableAccess> {
    t.reads
        .iter()
        .find(|(p, r)| *p < u.commit && u.writes.iter().any(|(_, w)| overlap(w, r)))
        .map(|(_, r)| *r)
}

/// The first anomaly found among the committed transactions of `log`.
pub fn classify(log: &[LogEntry]) -> Option<Anomaly> {
    let txns = committed(log);
    let pairs = || {
        txns.iter()
            .flat_map(|a| txns.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.id != b.id)
    };
    // Lost update: both read x before the other committed, then both
    // wrote the same row of it.
    for (a, b) in pairs() {
        if a.id > b.id {
            continue;
        }
        for (ra, x) in &a.reads {
            let b_read = b.reads.iter().any(|(p, r)| *p < a.commit && overlap(r, x));
            let same_write = a.writes.iter().any(|(_, wa)| {
                overlap(wa, x)
                    && b.writes
                        .iter()
                        .any(|(_, wb)| overlap(wb, x) && overlap(wa, wb))
            });
            if *ra < b.commit && b_read && same_write {
                return Some(Anomaly {
                    kind: "lost update",
                    first: a.id,
                    second: b.id,
                    detail: show(x),
                });
            }
        }
    }
    // Read skew: a read x before b committed and y after, b wrote both.
    for (a, b) in pairs() {
        for (p1, x) in &a.reads {
            for (p2, y) in &a.reads {
                if *p1 < b.commit
                    && b.commit < *p2
                    && b.writes.iter().any(|(_, w)| overlap(w, x))
                    && b.writes.iter().any(|(_, w)| overlap(w, y))
                {
                    return Some(Anomaly {
                        kind: "read skew",
                        first: a.id,
                        second: b.id,
                        detail: format!("{} then {}", show(x), show(y)),
                    });
                }
            }
        }
    }
    // Write skew: each read (before the other's commit) what the other wrote.
    for (a, b) in pairs() {
        if a.id > b.id {
            continue;
        }
        if let (Some(x), Some(y)) = (anti_dependency(a, b), anti_dependency(b, a)) {
            let predicate = matches!(x.rows, Rows::All) || matches!(y.rows, Rows::All);
            return Some(Anomaly {
                kind: if predicate {
                    "predicate write skew"
                } else {
                    "write skew"
                },
                first: a.id,
                second: b.id,
                detail: format!("{} / {}", show(x), show(y)),
            });
        }
    }
    None
}
