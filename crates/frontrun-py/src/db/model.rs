//! `DbModel`: the Python face of one database's lock model
//! ([`frontrun_sql::model::Model`]).

use std::sync::{Arc, Mutex, MutexGuard};

use frontrun_engine::event::{AccessKind, Key};
use frontrun_sql::accesses::Parts;
use frontrun_sql::model::Model;
use frontrun_sql::{Footprint, Prediction};
use pyo3::prelude::*;

use super::footprint::PyFootprint;

/// Key columns and lock table of one database (one per DSN).
#[pyclass(module = "frontrun._native", name = "DbModel", frozen)]
pub struct PyDbModel {
    inner: Arc<Mutex<Model>>,
}

/// An engine access as Python sees it: `(object, key or None, "read"|"write")`.
pub type PyAccess = (u64, Option<u64>, &'static str);

impl PyDbModel {
    fn lock(&self) -> MutexGuard<'_, Model> {
        // A poisoned mutex only means a panic elsewhere; the maps stay valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Model::event_parts`].
    pub(crate) fn event_parts(
        &self,
        txn: u64,
        fp: &Footprint,
        serializable: bool,
        snapshot_isolation: bool,
    ) -> Parts {
        self.lock()
            .event_parts(txn, fp, serializable, snapshot_isolation)
    }

    pub fn predict_fp(&self, txn: u64, fp: &Footprint) -> Prediction {
        self.lock().predict(txn, fp)
    }

    /// See [`Model::may_run`].
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
    fn new(database: &str) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            Ok({
                PyDbModel {
                    inner: Arc::new(Mutex::new(Model::new(database))),
                }
            })
        })
    }

    /// Fix the column that identifies rows of `table` (its primary key).
    fn declare_key(&self, table: &str, column: &str) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.lock().declare_key(table, column);
            Ok(())
        })
    }

    /// Record the columns of `table` that unique indexes cover (from the
    /// catalog). Tables never declared count every column as unique.
    fn declare_unique(&self, table: &str, columns: Vec<String>) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.lock().declare_unique(table, columns);
            Ok(())
        })
    }

    /// The key column used for `table`, declared or learnt.
    fn key_column(&self, table: &str) -> PyResult<Option<String>> {
        crate::ffi_guard::guard(|| Ok(self.lock().key_column(table).map(str::to_owned)))
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
    ) -> PyResult<Vec<PyAccess>> {
        crate::ffi_guard::guard(|| {
            Ok({
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
            })
        })
    }

    /// Whether `fp`, run now by `txn`, would wait for another open
    /// transaction: `("proceeds", [])`, `("blocks", [txn…])`,
    /// `("fails_nowait", [txn…])` or `("unknown", [])`.
    fn predict(&self, txn: u64, fp: &PyFootprint) -> PyResult<(&'static str, Vec<u64>)> {
        crate::ffi_guard::guard(|| {
            Ok({
                match self.predict_fp(txn, &fp.fp) {
                    Prediction::Proceeds => ("proceeds", Vec::new()),
                    Prediction::Blocks(b) => ("blocks", b),
                    Prediction::FailsNowait(b) => ("fails_nowait", b),
                    Prediction::Unknown => ("unknown", Vec::new()),
                }
            })
        })
    }

    /// Record that `txn` executed `fp` (its locks are now held; a
    /// `COMMIT`/`ROLLBACK` releases them).
    fn apply(&self, txn: u64, fp: &PyFootprint) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.lock().apply(txn, &fp.fp);
            Ok(())
        })
    }

    /// Forget `txn`'s locks (autocommit statement done, connection closed,
    /// transaction ended by the driver).
    fn end(&self, txn: u64) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.lock().end(txn);
            Ok(())
        })
    }

    /// Whether `fp`, found waiting for a lock, may already hold locks or a
    /// row version others could wait for (see `Model::may_wait_holding`).
    fn may_wait_holding(&self, fp: &PyFootprint) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.lock().may_wait_holding(&fp.fp)))
    }

    /// Whether `fp` might wait on the server for what the undone statement
    /// `undone` held (see `Model::may_wait_for_undone`).
    fn may_wait_for_undone(
        &self,
        undone_txn: u64,
        undone: &PyFootprint,
        fp: &PyFootprint,
    ) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            Ok(self
                .lock()
                .may_wait_for_undone(undone_txn, &undone.fp, &fp.fp))
        })
    }

    /// Number of transaction ends seen (see `may_run`).
    #[getter]
    fn epoch(&self) -> PyResult<u64> {
        crate::ffi_guard::guard(|| Ok(self.lock().epoch()))
    }

    /// Whether `txn` may try `fp` now: no predicted lock wait and, when
    /// `min_epoch` is given, some transaction ended since a failed attempt.
    #[pyo3(signature = (txn, fp, min_epoch = 0))]
    fn ready(&self, txn: u64, fp: &PyFootprint, min_epoch: u64) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.may_run(txn, &fp.fp, min_epoch)))
    }

    /// Transactions currently holding locks, sorted.
    fn holders(&self) -> PyResult<Vec<u64>> {
        crate::ffi_guard::guard(|| Ok(self.lock().holders()))
    }

    /// Forget every open transaction (between executions); key columns stay.
    fn reset_locks(&self) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            self.lock().reset_locks();
            Ok(())
        })
    }

    /// The isolation anomaly among the transactions committed since the
    /// last `reset_locks`: `(kind, first txn, second txn, rows)` or `None`.
    fn anomaly(&self) -> PyResult<Option<(&'static str, u64, u64, String)>> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.lock()
                    .anomaly()
                    .map(|a| (a.kind, a.first, a.second, a.detail))
            })
        })
    }

    /// What `txn` has done since it began, or `None`.
    fn transaction_describe(&self, txn: u64) -> PyResult<Option<String>> {
        crate::ffi_guard::guard(|| Ok(self.lock().transaction_describe(txn)))
    }
}
