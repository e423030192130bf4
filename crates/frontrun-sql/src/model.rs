//! One database's key columns and predicted row/table locks, kept for a
//! whole exploration so that resource ids stay stable; and the pending
//! statement that waits on them ([`LockWaitOp`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use frontrun_engine::coop::{Blocked, CoopOp};

use crate::accesses;
use crate::anomaly;
use crate::resources::{fnv1a, table_resource};
use crate::{Footprint, KeyColumns, LockTable, Prediction, StatementKind};

pub struct Model {
    keys: KeyColumns,
    /// Unique columns of the tables whose catalog was read.
    uniques: accesses::Uniques,
    locks: LockTable,
    /// Transactions ended so far: a statement that found a row locked may
    /// succeed only after some transaction ended since.
    epoch: u64,
    /// SQLite locks the whole database for writing: one writing
    /// transaction at a time (`None` for PostgreSQL's row locks).
    sqlite_writer: Option<Option<u64>>,
    /// Statements applied in this execution, for naming anomalies.
    log: Vec<anomaly::LogEntry>,
    /// Row-lock objects acquired by each open transaction.
    held: accesses::Held,
    /// The explored thread that last ran a statement of each transaction,
    /// to name lock holders in deadlock reports.
    threads: HashMap<u64, usize>,
    /// Mixed into resource ids so that two databases never share objects.
    salt: u64,
}

impl Model {
    /// `database` names the database (its DSN, say); it salts resource ids.
    /// A name starting with `sqlite` selects SQLite's database write lock.
    pub fn new(database: &str) -> Self {
        Model {
            keys: KeyColumns::new(),
            uniques: accesses::Uniques::new(),
            locks: LockTable::new(),
            epoch: 0,
            threads: HashMap::new(),
            held: accesses::Held::new(),
            log: Vec::new(),
            sqlite_writer: database.starts_with("sqlite").then_some(None),
            salt: if database.is_empty() {
                0
            } else {
                fnv1a(database.as_bytes())
            },
        }
    }

    /// Fix the column that identifies rows of `table` (its primary key).
    pub fn declare_key(&mut self, table: &str, column: &str) {
        self.keys.declare(table, column);
    }

    /// Record the columns of `table` that unique indexes cover (from the
    /// catalog). Tables never declared count every column as unique.
    pub fn declare_unique(&mut self, table: &str, columns: Vec<String>) {
        let cols = self.uniques.entry(table_resource(table)).or_default();
        for c in columns {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }

    /// The key column used for `table`, declared or learnt.
    pub fn key_column(&self, table: &str) -> Option<&str> {
        self.keys.get(table)
    }

    /// The engine accesses of `fp` run by transaction `txn`, as the
    /// statement's two scheduling points (see [`accesses`]).
    ///
    /// `COMMIT`/`ROLLBACK` use the footprint of everything the transaction
    /// did (what the commit publishes and which locks it releases) instead
    /// of conflicting with every statement; they and unbounded statements
    /// are one point (`reads`). `snapshot_isolation`: the transaction runs at
    /// REPEATABLE READ or SERIALIZABLE, so its first statement takes a
    /// snapshot.
    pub fn event_parts(
        &mut self,
        txn: u64,
        fp: &Footprint,
        serializable: bool,
        snapshot_isolation: bool,
    ) -> accesses::Parts {
        // SQLite serialises writers with its database lock instead.
        let postgres = self.sqlite_writer.is_none();
        let salt = self.salt;
        let Model {
            keys,
            uniques,
            locks,
            held,
            ..
        } = self;
        if fp.ends_transaction() && !fp.global && fp.accesses.is_empty() {
            let done = locks.transaction_footprint(txn);
            let commit = !fp.txn.contains(&crate::TxnControl::Rollback);
            return accesses::Parts {
                reads: accesses::end(done, keys, held, txn, salt, commit, serializable),
                locks: Vec::new(),
                snapshot: false,
            };
        }
        if fp.global {
            return accesses::Parts {
                reads: accesses::global(fp, keys, salt),
                locks: Vec::new(),
                snapshot: false,
            };
        }
        let first = locks
            .transaction_footprint(txn)
            .is_none_or(Footprint::is_inert);
        let iso = accesses::Isolation {
            snapshot: snapshot_isolation && first && postgres,
            serializable: serializable && postgres,
        };
        if iso.snapshot && fp.is_inert() && fp.kind == StatementKind::Select {
            // `SELECT 1` touches no table but still takes the snapshot: the
            // commits before it are in it, those after it are not.
            return accesses::snapshot_only(salt);
        }
        let mut parts = accesses::statement(fp, keys, uniques, held, txn, salt, iso);
        if self.sqlite_writer.is_some() && writes(fp) {
            accesses::acquire_database(&mut self.held, txn, salt, &mut parts.locks);
        }
        parts
    }

    /// Whether `fp`, run now by `txn`, would wait for another open transaction.
    pub fn predict(&self, txn: u64, fp: &Footprint) -> Prediction {
        self.locks.predict(txn, fp)
    }

    /// Whether `fp`, found waiting for a lock on the server, may already
    /// hold something another transaction could then wait for: an `INSERT`
    /// or `UPDATE` waits in its unique check after writing (and locking)
    /// its new row version, and a statement that locks several rows (or
    /// rows not pinned to one key) locks some before it waits for another.
    /// A lock probe that undoes such a statement loses that part of its wait.
    pub fn may_wait_holding(&self, fp: &Footprint) -> bool {
        if fp.global {
            return true;
        }
        let writes_version =
            |k: &StatementKind| matches!(k, StatementKind::Insert | StatementKind::Update);
        if writes_version(&fp.kind) || fp.kinds.iter().any(writes_version) {
            return true;
        }
        let locking: Vec<_> = fp
            .accesses
            .iter()
            .filter(|a| a.lock.is_some() || a.mode == crate::AccessMode::Write)
            .collect();
        let one_row = |a: &&crate::TableAccess| {
            let Some(key) = self.keys.get(&a.table) else {
                return false;
            };
            a.rows.values_of(key).is_some_and(|v| v.len() == 1)
        };
        locking.len() > 1 || !fp.table_locks.is_empty() || !locking.iter().all(one_row)
    }

    /// Whether `fp` might wait, on the server, for what the statement
    /// `undone` held when it began to wait (see [`Model::may_wait_holding`]):
    /// the rows it locked and the unique values of the row version it wrote.
    /// `false` only where that is impossible: every pair of their writes and
    /// locking reads of one table is on rows that differ in a key column,
    /// and they change no unique column in common.
    /// Rows that another transaction than `undone_txn` (the one of
    /// `undone`) holds locked against its lock cannot be among those it held.
    pub fn may_wait_for_undone(&self, undone_txn: u64, undone: &Footprint, fp: &Footprint) -> bool {
        if undone.global || fp.global || !fp.table_locks.is_empty() {
            return true;
        }
        let base = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
        let held: Vec<_> = undone
            .accesses
            .iter()
            .filter(|a| a.lock.is_some() || a.mode == crate::AccessMode::Write)
            .collect();
        let undone_tables: Vec<String> =
            undone.table_locks.iter().map(|l| base(&l.table)).collect();
        for a in &fp.accesses {
            if a.lock.is_none() && a.mode == crate::AccessMode::Read {
                // A plain read never waits for a row.
                continue;
            }
            if undone_tables.contains(&base(&a.table)) {
                return true;
            }
            for u in held.iter().filter(|u| base(&u.table) == base(&a.table)) {
                let mode = u.lock.map_or(crate::RowLockMode::Update, |l| l.mode);
                let key = self.keys.get(&a.table);
                let mine = self
                    .locks
                    .held_against_by_other(undone_txn, &a.table, &a.rows, key, mode);
                let deletes = fp.kind == StatementKind::Delete;
                if (!mine && self.rows_may_meet(u, a)) || (!deletes && self.uniques_may_meet(u, a))
                {
                    return true;
                }
            }
        }
        false
    }

    /// Whether two accesses of one table may touch a common row: only rows
    /// pinned to different values of the table's key column are apart.
    fn rows_may_meet(&self, a: &crate::TableAccess, b: &crate::TableAccess) -> bool {
        let Some(key) = self.keys.get(&a.table) else {
            return true;
        };
        match (a.rows.values_of(key), b.rows.values_of(key)) {
            (Some(x), Some(y)) => x.iter().any(|v| y.iter().any(|w| v.may_equal(w))),
            _ => true,
        }
    }

    /// Whether the write `b` (not a `DELETE`) may check a unique value
    /// that the write `a` holds (a value it wrote, or removed and may put
    /// back by rolling back).
    fn uniques_may_meet(&self, a: &crate::TableAccess, b: &crate::TableAccess) -> bool {
        if a.mode != crate::AccessMode::Write || b.mode != crate::AccessMode::Write {
            return false;
        }
        let known = self.uniques.get(&table_resource(&a.table));
        let unique = |c: &String| known.is_none_or(|u| u.contains(c));
        match (&a.changes, &b.changes) {
            // An INSERT checks every column of its row.
            (_, None) => true,
            // An UPDATE checks only the columns it changes (the others keep
            // its row's own values); an INSERT or DELETE holds them all.
            (None, Some(y)) => y.iter().any(unique),
            (Some(x), Some(y)) => y.iter().any(|c| unique(c) && x.contains(c)),
        }
    }

    /// Whether `txn` may try `fp` now: no predicted lock wait, and (after a
    /// failed attempt at epoch `min_epoch - 1`) some transaction has ended.
    pub fn may_run(&self, txn: u64, fp: &Footprint, min_epoch: u64) -> bool {
        if self.epoch < min_epoch {
            return false;
        }
        match self.sqlite_writer {
            Some(writer) => !writes(fp) || writer.is_none_or(|w| w == txn),
            None => !matches!(self.locks.predict(txn, fp), Prediction::Blocks(_)),
        }
    }

    /// Remember that explored thread `tid` runs transaction `txn`.
    pub fn note_thread(&mut self, txn: u64, tid: usize) {
        self.threads.insert(txn, tid);
    }

    /// DDL may add a unique constraint that the catalog read did not see:
    /// the tables it touches count every column as unique again (until the
    /// catalog is read anew, at the next execution). Unbounded DDL may touch
    /// any table.
    fn forget_uniques(&mut self, fp: &Footprint) {
        let ddl = fp.kind == StatementKind::Ddl || fp.kinds.contains(&StatementKind::Ddl);
        if !ddl {
            return;
        }
        if fp.global {
            self.uniques.clear();
            return;
        }
        let tables = fp.table_locks.iter().map(|l| &l.table);
        for t in tables.chain(fp.accesses.iter().map(|a| &a.table)) {
            self.uniques.remove(&table_resource(t));
        }
    }

    /// The explored threads whose transactions `fp` would wait for.
    pub fn blockers(&self, txn: u64, fp: &Footprint) -> Vec<Option<usize>> {
        if let Some(writer) = self.sqlite_writer {
            return match writer {
                Some(w) if w != txn && writes(fp) => vec![self.threads.get(&w).copied()],
                _ => Vec::new(),
            };
        }
        match self.locks.predict(txn, fp) {
            Prediction::Blocks(b) => b.iter().map(|t| self.threads.get(t).copied()).collect(),
            _ => Vec::new(),
        }
    }

    /// Record that `txn` executed `fp` (its locks are now held; a
    /// `COMMIT`/`ROLLBACK` releases them).
    pub fn apply(&mut self, txn: u64, fp: &Footprint) {
        self.locks.apply(txn, fp);
        self.forget_uniques(fp);
        if self.sqlite_writer == Some(None) && writes(fp) && !fp.ends_transaction() {
            self.sqlite_writer = Some(Some(txn));
        }
        if fp.ends_transaction() && self.sqlite_writer == Some(Some(txn)) {
            self.sqlite_writer = Some(None);
        }
        if !fp.is_inert() || fp.ends_transaction() {
            self.log.push(anomaly::LogEntry {
                txn,
                fp: fp.clone(),
            });
        }
        if fp.ends_transaction() {
            self.epoch += 1;
        }
    }

    /// Forget `txn`'s locks (autocommit statement done, connection closed,
    /// transaction ended by the driver).
    pub fn end(&mut self, txn: u64) {
        self.locks.end(txn);
        self.held.remove(&txn);
        if self.sqlite_writer == Some(Some(txn)) {
            self.sqlite_writer = Some(None);
        }
        self.epoch += 1;
    }

    /// Number of transaction ends seen (see [`Model::may_run`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Transactions currently holding locks, sorted.
    pub fn holders(&self) -> Vec<u64> {
        self.locks.holders()
    }

    /// Forget every open transaction (between executions); key columns stay.
    pub fn reset_locks(&mut self) {
        self.locks = LockTable::new();
        self.threads.clear();
        self.held.clear();
        self.log.clear();
        if self.sqlite_writer.is_some() {
            self.sqlite_writer = Some(None);
        }
    }

    /// The isolation anomaly among the transactions committed since the
    /// last [`Model::reset_locks`].
    pub fn anomaly(&self) -> Option<anomaly::Anomaly> {
        anomaly::classify(&self.log)
    }

    /// What `txn` has done since it began, or `None`.
    pub fn transaction_describe(&self, txn: u64) -> Option<String> {
        self.locks
            .transaction_footprint(txn)
            .map(Footprint::describe)
    }
}

/// Whether `fp` changes data (and so needs SQLite's write lock).
fn writes(fp: &Footprint) -> bool {
    fp.global
        || fp
            .accesses
            .iter()
            .any(|a| a.mode == crate::AccessMode::Write)
}

/// The pending statement `fp` of transaction `txn`: enabled while the model
/// predicts no lock wait.
pub struct LockWaitOp {
    pub model: Arc<Mutex<Model>>,
    pub txn: u64,
    pub fp: Footprint,
    /// After a probe found the statement waiting: some transaction must end
    /// before it is worth trying again.
    pub min_epoch: u64,
}

impl LockWaitOp {
    pub fn model(&self) -> MutexGuard<'_, Model> {
        // Poisoning only means a panic elsewhere; the model stays valid.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CoopOp for LockWaitOp {
    fn enabled(&self, _tid: usize, _finished: &[bool]) -> bool {
        self.model().may_run(self.txn, &self.fp, self.min_epoch)
    }

    fn apply(&mut self, _tid: usize, _timed_out: bool) -> i64 {
        0
    }

    fn blocked_on(&self) -> Blocked {
        let owner = self
            .model()
            .blockers(self.txn, &self.fp)
            .into_iter()
            .flatten()
            .next();
        let what = format!("a row lock ({})", self.fp.describe());
        match owner {
            Some(o) => Blocked::Lock {
                what,
                owner: Some(o),
            },
            None if self.min_epoch > 0 => {
                Blocked::Signal(format!("{what} held by another open transaction"))
            }
            None => Blocked::Lock { what, owner: None },
        }
    }
}
