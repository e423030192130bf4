//! `SqlFootprint`: what one statement reads, writes and locks.

use frontrun_sql::{
    analyse_with, Dialect, Footprint, IsolationLevel, Params, StatementKind, TxnControl,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::params::convert;

/// The footprint of one `execute` (frozen; build it with `sql_footprint`).
#[pyclass(module = "frontrun._native", name = "SqlFootprint", frozen)]
pub struct PyFootprint {
    pub fp: Footprint,
}

pub fn parse_dialect(name: &str) -> PyResult<Dialect> {
    match name.to_ascii_lowercase().as_str() {
        "postgresql" | "postgres" | "pg" => Ok(Dialect::PostgreSql),
        "sqlite" | "sqlite3" => Ok(Dialect::Sqlite),
        "mysql" | "mariadb" => Ok(Dialect::MySql),
        other => Err(PyValueError::new_err(format!(
            "unknown SQL dialect {other:?}: use 'postgresql', 'sqlite' or 'mysql'"
        ))),
    }
}

pub fn level_name(l: IsolationLevel) -> &'static str {
    match l {
        IsolationLevel::ReadUncommitted => "read uncommitted",
        IsolationLevel::ReadCommitted => "read committed",
        IsolationLevel::RepeatableRead => "repeatable read",
        IsolationLevel::Serializable => "serializable",
    }
}

fn kind_name(k: StatementKind) -> &'static str {
    match k {
        StatementKind::Select => "select",
        StatementKind::Insert => "insert",
        StatementKind::Update => "update",
        StatementKind::Delete => "delete",
        StatementKind::Ddl => "ddl",
        StatementKind::Lock => "lock",
        StatementKind::Begin => "begin",
        StatementKind::Commit => "commit",
        StatementKind::Rollback => "rollback",
        StatementKind::Savepoint => "savepoint",
        StatementKind::SetIsolation => "set_isolation",
        StatementKind::Other => "other",
    }
}

fn txn_name(t: &TxnControl) -> String {
    match t {
        TxnControl::Begin(_) => "begin".into(),
        TxnControl::Commit => "commit".into(),
        TxnControl::Rollback => "rollback".into(),
        TxnControl::Savepoint(n) => format!("savepoint {n}"),
        TxnControl::RollbackTo(n) => format!("rollback to {n}"),
        TxnControl::Release(n) => format!("release {n}"),
        TxnControl::SetIsolation { session: false, .. } => "set transaction isolation".into(),
        TxnControl::SetIsolation { session: true, .. } => "set session isolation".into(),
    }
}

/// Analyse `sql` run with `params` (a sequence for `%s`/`?`/`$1`, a mapping
/// for `%(name)s`/`:name`).
#[pyfunction]
#[pyo3(signature = (sql, params = None, dialect = "postgresql"))]
pub fn sql_footprint(
    sql: &str,
    params: Option<&Bound<'_, PyAny>>,
    dialect: &str,
) -> PyResult<PyFootprint> {
    crate::ffi_guard::guard(|| {
        let d = parse_dialect(dialect)?;
        let p = convert(params)?;
        let fp = analyse_with(
            sql,
            Params {
                positional: &p.positional,
                named: &p.named,
            },
            d,
        );
        Ok(PyFootprint { fp })
    })
}

/// The union footprint of `executemany(sql, seq_of_params)`.
#[pyfunction]
#[pyo3(signature = (sql, seq_of_params, dialect = "postgresql"))]
pub fn sql_footprint_many(
    sql: &str,
    seq_of_params: &Bound<'_, PyAny>,
    dialect: &str,
) -> PyResult<PyFootprint> {
    crate::ffi_guard::guard(|| {
        let d = parse_dialect(dialect)?;
        let mut out: Option<Footprint> = None;
        for params in seq_of_params.try_iter()? {
            let p = convert(Some(&params?))?;
            let fp = analyse_with(
                sql,
                Params {
                    positional: &p.positional,
                    named: &p.named,
                },
                d,
            );
            match &mut out {
                Some(acc) => merge(acc, fp),
                None => out = Some(fp),
            }
        }
        // No parameter sets: the statement never runs, but its shape is known.
        let fp = out.unwrap_or_else(|| analyse_with(sql, Params::default(), d));
        Ok(PyFootprint { fp })
    })
}

/// `Footprint::union` appends kinds and transaction effects too; repeated
/// runs of one statement add only their rows.
fn merge(acc: &mut Footprint, fp: Footprint) {
    let kinds = acc.kinds.clone();
    let txn = acc.txn.clone();
    acc.union(fp);
    acc.kinds = kinds;
    acc.txn = txn;
}

#[pymethods]
impl PyFootprint {
    /// Kind of the first statement: `select`, `insert`, `update`, `delete`,
    /// `ddl`, `lock`, `begin`, `commit`, `rollback`, `savepoint`,
    /// `set_isolation` or `other`.
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        crate::ffi_guard::guard(|| Ok(kind_name(self.fp.kind)))
    }

    /// Transaction-control effects, in order (`begin`, `commit`,
    /// `savepoint s1`…).
    #[getter]
    fn txn(&self) -> PyResult<Vec<String>> {
        crate::ffi_guard::guard(|| Ok(self.fp.txn.iter().map(txn_name).collect()))
    }

    /// The isolation level the statement asks for (`BEGIN ISOLATION LEVEL …`,
    /// `SET TRANSACTION …`), if any.
    #[getter]
    fn isolation(&self) -> PyResult<Option<&'static str>> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.fp.txn.iter().rev().find_map(|t| match t {
                    TxnControl::Begin(Some(l)) | TxnControl::SetIsolation { level: l, .. } => {
                        Some(level_name(*l))
                    }
                    _ => None,
                })
            })
        })
    }

    /// Whether `isolation` was set for the whole session.
    #[getter]
    fn isolation_for_session(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.fp
                    .txn
                    .iter()
                    .any(|t| matches!(t, TxnControl::SetIsolation { session: true, .. }))
            })
        })
    }

    #[getter]
    fn begins(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.fp
                    .txn
                    .iter()
                    .any(|t| matches!(t, TxnControl::Begin(_)))
            })
        })
    }

    #[getter]
    fn ends_transaction(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.fp.ends_transaction()))
    }

    #[getter]
    fn rolls_back(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.fp
                    .txn
                    .iter()
                    .any(|t| matches!(t, TxnControl::Rollback))
            })
        })
    }

    /// Some statement could not be parsed.
    #[getter]
    fn unparsed(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.fp.unparsed))
    }

    #[getter]
    fn parse_error(&self) -> PyResult<Option<String>> {
        crate::ffi_guard::guard(|| Ok(self.fp.parse_error.clone()))
    }

    /// The footprint is unbounded: it conflicts with everything on the database.
    #[getter]
    fn is_global(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.fp.global))
    }

    /// It touches no table and ends no transaction.
    #[getter]
    fn inert(&self) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.fp.is_inert()))
    }

    /// Tables touched, as `(table, "read"|"write")`.
    #[getter]
    fn tables(&self) -> PyResult<Vec<(String, &'static str)>> {
        crate::ffi_guard::guard(|| {
            Ok({
                self.fp
                    .accesses
                    .iter()
                    .map(|a| {
                        let mode = match a.mode {
                            frontrun_sql::AccessMode::Read => "read",
                            frontrun_sql::AccessMode::Write => "write",
                        };
                        (a.table.clone(), mode)
                    })
                    .collect()
            })
        })
    }

    /// Short text such as `write accounts[name='alice'] (row lock)`.
    fn describe(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| Ok(self.fp.describe()))
    }

    /// Whether this and `other`, run by different transactions, must not be
    /// reordered.
    fn conflicts(&self, other: &PyFootprint) -> PyResult<bool> {
        crate::ffi_guard::guard(|| Ok(self.fp.conflicts(&other.fp)))
    }

    fn __repr__(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| {
            Ok(format!(
                "SqlFootprint({:?}: {})",
                self.kind(),
                self.fp.describe()
            ))
        })
    }
}
