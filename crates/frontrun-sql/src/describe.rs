//! Short human descriptions of footprints, for race explanations.

use std::fmt::Write as _;

use crate::footprint::{AccessMode, Footprint, IsolationLevel, Rows, TableAccess, TxnControl};

impl Footprint {
    /// Short human text for explanations, e.g.
    /// `read accounts[name='alice']; write accounts[name='alice'] (row lock)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for t in &self.txn {
            parts.push(describe_txn(t));
        }
        for l in &self.table_locks {
            let wait = if l.nowait { " NOWAIT" } else { "" };
            parts.push(format!("lock table {} ({}{wait})", l.table, l.mode.sql()));
        }
        for a in &self.accesses {
            parts.push(describe_access(a));
        }
        if self.unparsed {
            let msg = self.parse_error.as_deref().unwrap_or("unknown error");
            parts.push(format!(
                "unparsed SQL, treated as touching everything ({msg})"
            ));
        } else if self.global {
            parts.push("may touch any table".to_string());
        }
        if parts.is_empty() {
            parts.push(format!("{:?}", self.kind).to_lowercase());
        }
        parts.join("; ")
    }
}

fn describe_access(a: &TableAccess) -> String {
    let verb = match a.mode {
        AccessMode::Read => "read",
        AccessMode::Write => "write",
    };
    let mut s = format!("{verb} {}[", a.table);
    match &a.rows {
        Rows::All => s.push('*'),
        Rows::Keys(keys) => {
            let mut first_col = true;
            let mut i = 0;
            while i < keys.len() {
                let col = &keys[i].0;
                if keys[..i].iter().any(|(c, _)| c == col) {
                    i += 1;
                    continue;
                }
                if !first_col {
                    s.push_str(", ");
                }
                first_col = false;
                let vals: Vec<String> = keys
                    .iter()
                    .filter(|(c, _)| c == col)
                    .map(|(_, v)| v.to_string())
                    .collect();
                if vals.len() == 1 {
                    let _ = write!(s, "{col}={}", vals[0]);
                } else {
                    let _ = write!(s, "{col} in ({})", vals.join(","));
                }
                i += 1;
            }
        }
    }
    s.push(']');
    match (a.mode, a.lock) {
        (AccessMode::Write, Some(_)) => s.push_str(" (row lock)"),
        (AccessMode::Read, Some(l)) => {
            let _ = write!(s, " ({})", l.mode.sql());
        }
        _ => {}
    }
    if let Some(l) = a.lock {
        if l.nowait {
            s.push_str(" NOWAIT");
        }
        if l.skip_locked {
            s.push_str(" SKIP LOCKED");
        }
    }
    s
}

fn describe_txn(t: &TxnControl) -> String {
    let level = |l: &IsolationLevel| match l {
        IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
        IsolationLevel::ReadCommitted => "READ COMMITTED",
        IsolationLevel::RepeatableRead => "REPEATABLE READ",
        IsolationLevel::Serializable => "SERIALIZABLE",
    };
    match t {
        TxnControl::Begin(None) => "BEGIN".into(),
        TxnControl::Begin(Some(l)) => format!("BEGIN ISOLATION LEVEL {}", level(l)),
        TxnControl::Commit => "COMMIT".into(),
        TxnControl::Rollback => "ROLLBACK".into(),
        TxnControl::Savepoint(n) => format!("SAVEPOINT {n}"),
        TxnControl::RollbackTo(n) => format!("ROLLBACK TO SAVEPOINT {n}"),
        TxnControl::Release(n) => format!("RELEASE SAVEPOINT {n}"),
        TxnControl::SetIsolation { level: l, session } => {
            let scope = if *session { "SESSION " } else { "" };
            format!("SET {scope}TRANSACTION ISOLATION LEVEL {}", level(l))
        }
    }
}
