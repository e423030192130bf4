//! `DbModel`: one database's key columns and predicted row/table locks,
//! kept for a whole exploration so that resource ids stay stable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use frontrun_engine::event::{AccessKind, Key};
use frontrun_sql::resources::fnv1a;
use frontrun_sql::{Footprint, KeyColumns, LockTable, Prediction, StatementKind};
use pyo3::prelude::*;

use super::accesses;
use super::anomaly;
use super::footprint::PyFootprint;

pub(crate) struct Model {
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
    log: Vec<anomaly::Entry>,
    /// Row-lock objects acquired by each open transaction.
    held: accesses::Held,
    /// The explored thread that last ran a statement of each transaction,
    /// to name lock holders in deadlock reports.
    threads: HashMap<u64, usize>,
}

impl Model {
    /// Whether `txn` may try `fp` now (see [`PyDbModel::may_run`]).
    pub(crate) fn may_run(&self, txn: u64, fp: &Footprint, min_epoch: u64) -> bool {
        if self.epoch < min_epoch {
            return false;
        }
        match self.sqlite_writer {
            Some(writer) => !writes(fp) || writer.is_none_or(|w| w == txn),
            None => !matches!(self.locks.predict(txn, fp), Prediction::Blocks(_)),
        }
    }

    /// Remember that explored thread `tid` runs transaction `txn`.
    pub(crate) fn note_thread(&mut self, txn: u64, tid: usize) {
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
            self.uniques
                .remove(&frontrun_sql::resources::table_resource(t));
        }
    }

    /// The explored threads whose transactions `fp` would wait for.
    pub(crate) fn blockers(&self, txn: u64, fp: &Footprint) -> Vec<Option<usize>> {
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
}

/// Whether `fp` changes data (and so needs SQLite's write lock).
fn writes(fp: &Footprint) -> bool {
    fp.global
        || fp
            .accesses
            .iter()
            .any(|a| a.mode == frontrun_sql::AccessMode::Write)
}

/// Key columns and lock table of one database (one per DSN).
#[pyclass(module = "frontrun._native", name = "DbModel", frozen)]
pub struct PyDbModel {
    inner: Arc<Mutex<Model>>,
    /// Mixed into resource ids so that two databases never share objects.
    salt: u64,
}

/// An engine access as Python sees it: `(object, key or None, "read"|"write")`.
pub type PyAccess = (u64, Option<u64>, &'static str);

impl PyDbModel {
    fn lock(&self) -> MutexGuard<'_, Model> {
        // A poisoned mutex only means a panic elsewhere; the maps stay valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
    pub(crate) fn event_parts(
        &self,
        txn: u64,
        fp: &Footprint,
        serializable: bool,
        snapshot_isolation: bool,
    ) -> accesses::Parts {
        let mut m = self.lock();
        // SQLite serialises writers with its database lock instead.
        let postgres = m.sqlite_writer.is_none();
        let Model {
            keys,
            uniques,
            locks,
            held,
            ..
        } = &mut *m;
        if fp.ends_transaction() && !fp.global && fp.accesses.is_empty() {
            let done = locks.transaction_footprint(txn);
            let commit = !fp.txn.contains(&frontrun_sql::TxnControl::Rollback);
            return accesses::Parts {
                reads: accesses::end(done, keys, held, txn, self.salt, commit, serializable),
                locks: Vec::new(),
                snapshot: false,
            };
        }
        if fp.global {
            return accesses::Parts {
                reads: accesses::global(fp, keys, self.salt),
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
            return accesses::snapshot_only(self.salt);
        }
        let mut parts = accesses::statement(fp, keys, uniques, held, txn, self.salt, iso);
        if m.sqlite_writer.is_some() && writes(fp) {
            accesses::acquire_database(&mut m.held, txn, self.salt, &mut parts.locks);
        }
        parts
    }

    pub fn predict_fp(&self, txn: u64, fp: &Footprint) -> Prediction {
        self.lock().locks.predict(txn, fp)
    }

    /// Whether `txn` may try `fp` now: no predicted lock wait, and (after a
    /// failed attempt at epoch `min_epoch - 1`) some transaction has ended.
    pub fn may_run(&self, txn: u64, fp: &Footprint, min_epoch: u64) -> bool {
        self.lock().may_run(txn, fp, min_epoch)
    }

    /// The model, for conditions evaluated by the scheduler.
    pub(crate) fn shared(&self) -> Arc<Mutex<Model>> {
        Arc::clone(&self.inner)
    }
}

fn kind_str(k: AccessKind) -> &'static str {
    match k {
        AccessKind::Read => "read",
        AccessKind::Acquire => "acquire",
        AccessKind::Release => "release",
        _ => "write",
    }
}

#[pymethods]
impl PyDbModel {
    /// `database` names the database (its DSN, say); it salts resource ids.
    #[new]
    #[pyo3(signature = (database = ""))]
    fn new(database: &str) -> Self {
        PyDbModel {
            inner: Arc::new(Mutex::new(Model {
                keys: KeyColumns::new(),
                uniques: accesses::Uniques::new(),
                locks: LockTable::new(),
                epoch: 0,
                threads: HashMap::new(),
                held: accesses::Held::new(),
                log: Vec::new(),
                sqlite_writer: database.starts_with("sqlite").then_some(None),
            })),
            salt: if database.is_empty() {
                0
            } else {
                fnv1a(database.as_bytes())
            },
        }
    }

    /// Fix the column that identifies rows of `table` (its primary key).
    fn declare_key(&self, table: &str, column: &str) {
        self.lock().keys.declare(table, column);
    }

    /// Record the columns of `table` that unique indexes cover (from the
    /// catalog). Tables never declared count every column as unique.
    fn declare_unique(&self, table: &str, columns: Vec<String>) {
        let id = frontrun_sql::resources::table_resource(table);
        let mut m = self.lock();
        let cols = m.uniques.entry(id).or_default();
        for c in columns {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }

    /// The key column used for `table`, declared or learnt.
    fn key_column(&self, table: &str) -> Option<String> {
        self.lock().keys.get(table).map(str::to_owned)
    }

    /// Engine accesses of `fp` run by `txn`, both scheduling points of a
    /// statement together (see the module docs).
    #[pyo3(signature = (txn, fp, serializable = false, snapshot_isolation = false))]
    fn accesses(
        &self,
        txn: u64,
        fp: &PyFootprint,
        serializable: bool,
        snapshot_isolation: bool,
    ) -> Vec<PyAccess> {
        self.event_parts(txn, &fp.fp, serializable, snapshot_isolation)
            .joined()
            .iter()
            .map(|a| {
                let key = match a.key {
                    Key::Any => None,
                    Key::Exact(k) => Some(k),
                };
                (a.obj, key, kind_str(a.kind))
            })
            .collect()
    }

    /// Whether `fp`, run now by `txn`, would wait for another open
    /// transaction: `("proceeds", [])`, `("blocks", [txn…])`,
    /// `("fails_nowait", [txn…])` or `("unknown", [])`.
    fn predict(&self, txn: u64, fp: &PyFootprint) -> (&'static str, Vec<u64>) {
        match self.predict_fp(txn, &fp.fp) {
            Prediction::Proceeds => ("proceeds", Vec::new()),
            Prediction::Blocks(b) => ("blocks", b),
            Prediction::FailsNowait(b) => ("fails_nowait", b),
            Prediction::Unknown => ("unknown", Vec::new()),
        }
    }

    /// Record that `txn` executed `fp` (its locks are now held; a
    /// `COMMIT`/`ROLLBACK` releases them).
    fn apply(&self, txn: u64, fp: &PyFootprint) {
        let mut m = self.lock();
        m.locks.apply(txn, &fp.fp);
        m.forget_uniques(&fp.fp);
        if m.sqlite_writer == Some(None) && writes(&fp.fp) && !fp.fp.ends_transaction() {
            m.sqlite_writer = Some(Some(txn));
        }
        if fp.fp.ends_transaction() && m.sqlite_writer == Some(Some(txn)) {
            m.sqlite_writer = Some(None);
        }
        if !fp.fp.is_inert() || fp.fp.ends_transaction() {
            m.log.push(anomaly::Entry {
                txn,
                fp: fp.fp.clone(),
            });
        }
        if fp.fp.ends_transaction() {
            m.epoch += 1;
        }
    }

    /// Forget `txn`'s locks (autocommit statement done, connection closed,
    /// transaction ended by the driver).
    fn end(&self, txn: u64) {
        let mut m = self.lock();
        m.locks.end(txn);
        m.held.remove(&txn);
        if m.sqlite_writer == Some(Some(txn)) {
            m.sqlite_writer = Some(None);
        }
        m.epoch += 1;
    }

    /// Number of transaction ends seen (see `may_run`).
    #[getter]
    fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Whether `txn` may try `fp` now: no predicted lock wait and, when
    /// `min_epoch` is given, some transaction ended since a failed attempt.
    #[pyo3(signature = (txn, fp, min_epoch = 0))]
    fn ready(&self, txn: u64, fp: &PyFootprint, min_epoch: u64) -> bool {
        self.may_run(txn, &fp.fp, min_epoch)
    }

    /// Transactions currently holding locks, sorted.
    fn holders(&self) -> Vec<u64> {
        self.lock().locks.holders()
    }

    /// Forget every open transaction (between executions); key columns stay.
    fn reset_locks(&self) {
        let mut m = self.lock();
        m.locks = LockTable::new();
        m.threads.clear();
        m.held.clear();
        m.log.clear();
        if m.sqlite_writer.is_some() {
            m.sqlite_writer = Some(None);
        }
    }

    /// The isolation anomaly among the transactions committed since the
    /// last `reset_locks`: `(kind, first txn, second txn, rows)` or `None`.
    fn anomaly(&self) -> Option<(&'static str, u64, u64, String)> {
        anomaly::classify(&self.lock().log).map(|a| (a.kind, a.first, a.second, a.detail))
    }

    /// What `txn` has done since it began, or `None`.
    fn transaction_describe(&self, txn: u64) -> Option<String> {
        self.lock()
            .locks
            .transaction_footprint(txn)
            .map(Footprint::describe)
    }
}
