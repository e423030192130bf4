//! A predictive model of PostgreSQL lock waits between open transactions.
//!
//! The driver feeds it every statement a transaction has executed
//! ([`LockTable::apply`]) and asks, before running a statement of another
//! transaction, whether it would wait ([`LockTable::predict`]). Only simple
//! cases are decided: row locks pinned on the same column, and table locks.
//! Everything else (unpinned rows, pins on different columns, inserts that
//! may hit a unique key) is [`Prediction::Unknown`], so the driver can fall
//! back to asking the server (`pg_locks`, or a timeout on the statement).
//!
//! The answers are conservative, never optimistic: `Proceeds` means the
//! server does not make the statement wait. `Blocks` may name transactions
//! the server does not wait for (every `UPDATE` is taken as changing the
//! key, so it conflicts with `FOR KEY SHARE`; a locked row may not exist),
//! and it omits those the model cannot decide about (they make `Unknown`
//! when nothing is certain). `tests/test_db_lock_model.py` checks this
//! against a real server and counts the over-predictions.

use std::collections::BTreeMap;

use crate::footprint::same_table;
use crate::footprint::{
    AccessMode, Footprint, RowLockMode, Rows, StatementKind, TableLockMode, TxnControl,
};

/// A transaction (in practice: a connection with an open transaction).
pub type TxnId = u64;

/// What running a statement now would do, lock-wise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// No lock held by another transaction is in the way.
    Proceeds,
    /// It would wait for these transactions (sorted), and perhaps for others
    /// the model cannot decide about.
    Blocks(Vec<TxnId>),
    /// It asked for `NOWAIT` and would fail because of these transactions.
    FailsNowait(Vec<TxnId>),
    /// The model cannot tell.
    Unknown,
}

#[derive(Clone, Debug)]
struct HeldRows {
    table: String,
    rows: Rows,
    mode: RowLockMode,
    /// Rows this transaction inserted: no other transaction's snapshot sees
    /// them, so only a colliding insert (unique key check) can wait on them.
    inserted: bool,
    /// Rows this transaction updated or deleted (so they have a newer
    /// version, which it may have locked again).
    written: bool,
    /// Number of savepoints open when the lock was taken.
    depth: usize,
}

#[derive(Clone, Debug)]
struct HeldTable {
    table: String,
    mode: TableLockMode,
    depth: usize,
}

#[derive(Clone, Debug, Default)]
struct TxnLocks {
    rows: Vec<HeldRows>,
    tables: Vec<HeldTable>,
    savepoints: Vec<String>,
    footprint: Footprint,
    /// It ran a statement whose locks are unknown (unparsed SQL, `CALL`…).
    opaque: bool,
}

/// Locks held by open transactions, as predicted from their statements.
#[derive(Clone, Debug, Default)]
pub struct LockTable {
    txns: BTreeMap<TxnId, TxnLocks>,
}

impl LockTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `txn` executed `fp`: its locks are now held, and a
    /// `COMMIT`/`ROLLBACK` releases everything. A statement run in autocommit
    /// mode should be followed by [`LockTable::end`].
    pub fn apply(&mut self, txn: TxnId, fp: &Footprint) {
        let state = self.txns.entry(txn).or_default();
        let depth = state.savepoints.len();
        state.opaque |= fp.global;
        for a in &fp.accesses {
            // A plain INSERT holds its new rows until commit: a concurrent
            // insert of the same unique key waits for it.
            let mode = match (a.lock, a.mode) {
                (Some(l), _) => Some(l.mode),
                (None, AccessMode::Write) => Some(RowLockMode::Update),
                (None, AccessMode::Read) => None,
            };
            if let Some(mode) = mode {
                state.rows.push(HeldRows {
                    table: a.table.clone(),
                    rows: a.rows.clone(),
                    mode,
                    inserted: a.lock.is_none(),
                    written: a.mode == AccessMode::Write,
                    depth,
                });
            }
            state.tables.push(HeldTable {
                table: a.table.clone(),
                mode: a.table_lock(),
                depth,
            });
        }
        for l in &fp.table_locks {
            state.tables.push(HeldTable {
                table: l.table.clone(),
                mode: l.mode,
                depth,
            });
        }
        state.footprint.union(fp.clone());
        let mut ended = false;
        for op in &fp.txn {
            match op {
                TxnControl::Savepoint(n) => state.savepoints.push(n.clone()),
                TxnControl::RollbackTo(n) => {
                    if let Some(i) = state.savepoints.iter().rposition(|s| s == n) {
                        // Locks taken after the savepoint are given back.
                        state.rows.retain(|h| h.depth <= i);
                        state.tables.retain(|h| h.depth <= i);
                        state.savepoints.truncate(i + 1);
                    }
                }
                TxnControl::Release(n) => {
                    if let Some(i) = state.savepoints.iter().rposition(|s| s == n) {
                        state.savepoints.truncate(i);
                        for h in &mut state.rows {
                            h.depth = h.depth.min(i);
                        }
                        for h in &mut state.tables {
                            h.depth = h.depth.min(i);
                        }
                    }
                }
                TxnControl::Commit | TxnControl::Rollback => ended = true,
                TxnControl::Begin(_) | TxnControl::SetIsolation { .. } => {}
            }
        }
        if ended {
            self.txns.remove(&txn);
        }
    }

    /// Forgets `txn`'s locks (transaction ended outside SQL, connection
    /// closed, autocommit statement finished).
    pub fn end(&mut self, txn: TxnId) {
        self.txns.remove(&txn);
    }

    /// Transactions currently holding locks, sorted.
    pub fn holders(&self) -> Vec<TxnId> {
        self.txns
            .iter()
            .filter(|(_, t)| t.opaque || !t.rows.is_empty() || !t.tables.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Everything `txn` has executed since it began: what its `COMMIT` makes
    /// visible, for a precise conflict test of the commit.
    pub fn transaction_footprint(&self, txn: TxnId) -> Option<&Footprint> {
        self.txns.get(&txn).map(|t| &t.footprint)
    }

    /// Whether some transaction but `except` holds `rows` against `mode`
    /// (see [`LockTable::holds_against`]).
    pub fn held_against_by_other(
        &self,
        except: TxnId,
        table: &str,
        rows: &Rows,
        key: Option<&str>,
        mode: RowLockMode,
    ) -> bool {
        self.txns
            .keys()
            .any(|&t| t != except && self.holds_against(t, table, rows, key, mode))
    }

    /// Whether `txn` holds a row lock of `table` conflicting with `mode` on
    /// every row of `rows` (pinned on `key`, or every row of the table it
    /// scanned): then no other transaction can hold a lock of that mode
    /// there. (Not quite for a whole-table lock: a row committed by a third
    /// transaction after `txn`'s scan is not covered by it.)
    pub fn holds_against(
        &self,
        txn: TxnId,
        table: &str,
        rows: &Rows,
        key: Option<&str>,
        mode: RowLockMode,
    ) -> bool {
        let Some(state) = self.txns.get(&txn) else {
            return false;
        };
        let conflicting = |h: &&HeldRows| {
            !h.inserted && same_table(&h.table, table) && h.mode.conflicts_with(mode)
        };
        if state
            .rows
            .iter()
            .filter(conflicting)
            .any(|h| matches!(h.rows, Rows::All))
        {
            return true;
        }
        let Some(wanted) = key.and_then(|k| rows.values_of(k)) else {
            return false;
        };
        let key = key.unwrap_or_default();
        wanted.iter().all(|v| {
            state.rows.iter().any(|h| {
                !h.inserted
                    && same_table(&h.table, table)
                    && h.mode.conflicts_with(mode)
                    && h.rows.values_of(key).is_some_and(|held| held.contains(v))
            })
        })
    }

    /// Whether `fp`, run now by `txn`, would wait for another transaction.
    pub fn predict(&self, txn: TxnId, fp: &Footprint) -> Prediction {
        if fp.is_inert() || (fp.accesses.is_empty() && fp.table_locks.is_empty() && !fp.global) {
            return Prediction::Proceeds;
        }
        let mut blockers = Vec::new();
        let mut nowait_hit = false;
        let mut unknown = false;
        for (&other, held) in &self.txns {
            if other == txn || (held.rows.is_empty() && held.tables.is_empty() && !held.opaque) {
                continue;
            }
            if fp.global || held.opaque {
                unknown = true;
                continue;
            }
            let mut blocks = false;
            // Table locks are taken on the whole table: always decidable.
            let wanted = fp
                .table_locks
                .iter()
                .map(|l| (&l.table, l.mode, l.nowait))
                .chain(
                    fp.accesses
                        .iter()
                        .map(|a| (&a.table, a.table_lock(), a.lock.is_some_and(|l| l.nowait))),
                );
            for (table, mode, nowait) in wanted {
                if held
                    .tables
                    .iter()
                    .any(|h| same_table(&h.table, table) && h.mode.conflicts_with(mode))
                {
                    blocks = true;
                    nowait_hit |= nowait;
                }
            }
            for a in &fp.accesses {
                let wanted = match (a.lock, a.mode) {
                    (Some(l), _) if l.skip_locked => {
                        // FOR KEY SHARE does not conflict with a non-key
                        // UPDATE, so it follows the row to its new version,
                        // and waits for a lock there despite SKIP LOCKED
                        // (seen on the server by the differential test).
                        unknown |= l.mode == RowLockMode::KeyShare
                            && held.rows.iter().any(|h| {
                                h.written
                                    && !h.inserted
                                    && same_table(&h.table, &a.table)
                                    && h.rows.overlaps(&a.rows)
                            });
                        continue;
                    }
                    (Some(l), _) => l.mode,
                    (None, AccessMode::Write) => RowLockMode::Update,
                    (None, AccessMode::Read) => continue,
                };
                let plain_insert = a.mode == AccessMode::Write && a.lock.is_none();
                for h in held.rows.iter().filter(|h| same_table(&h.table, &a.table)) {
                    // A write may collide with another's uncommitted write
                    // of a different row on a unique column (the catalog is
                    // not known here): then it waits for that transaction.
                    if creates_values(fp, a) && h.written {
                        unknown = true;
                    }
                    // Uncommitted new rows are invisible to UPDATE, DELETE
                    // and SELECT … FOR …: they skip them without waiting.
                    if h.inserted && !plain_insert {
                        continue;
                    }
                    if !h.mode.conflicts_with(wanted) || !h.rows.overlaps(&a.rows) {
                        continue;
                    }
                    if plain_insert || !same_pinned_column(&h.rows, &a.rows) {
                        // Whether the rows exist, or collide on a unique key,
                        // is the server's business.
                        unknown = true;
                    } else {
                        blocks = true;
                        nowait_hit |= a.lock.is_some_and(|l| l.nowait);
                    }
                }
            }
            if blocks {
                blockers.push(other);
            }
        }
        match (blockers.is_empty(), unknown) {
            (false, _) if nowait_hit => Prediction::FailsNowait(blockers),
            (false, _) => Prediction::Blocks(blockers),
            (true, true) => Prediction::Unknown,
            (true, false) => Prediction::Proceeds,
        }
    }
}

/// Whether the write `a` of `fp` may give a row new column values (every
/// write but a `DELETE`), which a unique index then checks.
fn creates_values(fp: &Footprint, a: &crate::footprint::TableAccess) -> bool {
    a.mode == AccessMode::Write
        && !(a.changes.is_none() && a.lock.is_some() && fp.kind == StatementKind::Delete)
}

/// Both row sets pin some common column (and overlap there): then they name
/// the same rows, assuming the column identifies rows.
fn same_pinned_column(a: &Rows, b: &Rows) -> bool {
    match (a, b) {
        (Rows::Keys(ka), Rows::Keys(kb)) => ka.iter().any(|(c, _)| kb.iter().any(|(d, _)| c == d)),
        _ => false,
    }
}
