//! From a parsed statement to a footprint *template*: the footprint with
//! parameter slots still unresolved, so that it can be cached by SQL text and
//! instantiated cheaply for each `execute`.
//!
//! `mod.rs` dispatches on the statement kind; `query` walks queries and
//! finds sub-queries, `dml` handles INSERT/UPDATE/DELETE, `pins` reads the
//! equalities of WHERE clauses.

mod dml;
mod pins;
mod query;

use sqlparser::ast::{
    self, Ident, ObjectName, ObjectNamePart, ObjectType, Statement, TransactionIsolationLevel,
    TransactionMode,
};

use crate::footprint::{
    AccessMode, Footprint, IsolationLevel, RowLock, StatementKind, TableLock, TableLockMode,
    TxnControl,
};
use crate::lex::{ParamSlot, Piece};
use crate::value::Value;
use crate::Dialect;

/// The value a pinned column is compared with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    Lit(Value),
    Param(ParamSlot),
    /// A parameter holding a list (`col = ANY(%s)`).
    ParamList(ParamSlot),
}

/// Per column, the operands it may equal; columns are ANDed.
pub(crate) type Pins = Vec<(String, Vec<Operand>)>;

/// A table access whose pinned values may still be parameter slots.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TAccess {
    pub table: String,
    pub mode: AccessMode,
    pub pins: Pins,
    pub lock: Option<RowLock>,
    /// See [`crate::TableAccess::changes`].
    pub changes: Option<Vec<String>>,
}

/// A footprint with unresolved parameters. `base.accesses` is empty; the
/// accesses live in `accesses` until instantiated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Template {
    pub base: Footprint,
    pub accesses: Vec<TAccess>,
}

/// A relation in scope of a `SELECT`/`UPDATE`/`DELETE`, pinned by its WHERE.
#[derive(Clone, Debug)]
struct Rel {
    table: String,
    /// The alias, or else the bare table name: what qualified columns use.
    qualifier: String,
    pins: Pins,
}

pub(crate) struct Extractor<'a> {
    piece: &'a Piece,
    dialect: Dialect,
    accesses: Vec<TAccess>,
    global: bool,
    /// CTE names in scope, innermost last.
    ctes: Vec<String>,
    /// Inside a sub-query that may refer to outer columns: an unqualified
    /// column there may be an outer one, so it pins nothing.
    in_correlated: bool,
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(piece: &'a Piece, dialect: Dialect) -> Self {
        Extractor {
            piece,
            dialect,
            accesses: Vec::new(),
            global: false,
            ctes: Vec::new(),
            in_correlated: false,
        }
    }

    /// Footprint template of one parsed statement.
    pub(crate) fn statement(mut self, st: &Statement) -> Template {
        let mut base = Footprint::default();
        let kind = self.dispatch(st, &mut base);
        base.kind = kind;
        base.kinds = vec![kind];
        base.global |= self.global;
        Template {
            base,
            accesses: self.accesses,
        }
    }

    fn dispatch(&mut self, st: &Statement, fp: &mut Footprint) -> StatementKind {
        use StatementKind as K;
        match st {
            Statement::Query(q) => {
                self.query(q);
                K::Select
            }
            Statement::Insert(ins) => {
                self.insert(ins);
                K::Insert
            }
            Statement::Update {
                table,
                assignments,
                from,
                selection,
                returning,
                ..
            } => {
                self.update(
                    table,
                    assignments,
                    from.as_ref(),
                    selection.as_ref(),
                    returning.as_deref(),
                );
                K::Update
            }
            Statement::Delete(del) => {
                self.delete(del);
                K::Delete
            }
            Statement::StartTransaction { modes, .. } => {
                fp.txn.push(TxnControl::Begin(isolation(modes)));
                K::Begin
            }
            Statement::Commit { .. } => {
                fp.txn.push(TxnControl::Commit);
                K::Commit
            }
            Statement::Rollback {
                savepoint: None, ..
            } => {
                fp.txn.push(TxnControl::Rollback);
                K::Rollback
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => {
                fp.txn.push(TxnControl::RollbackTo(self.ident(name)));
                K::Savepoint
            }
            Statement::Savepoint { name } => {
                fp.txn.push(TxnControl::Savepoint(self.ident(name)));
                K::Savepoint
            }
            Statement::ReleaseSavepoint { name } => {
                fp.txn.push(TxnControl::Release(self.ident(name)));
                K::Savepoint
            }
            Statement::Set(ast::Set::SetTransaction { modes, session, .. }) => {
                match isolation(modes) {
                    Some(level) => {
                        fp.txn.push(TxnControl::SetIsolation {
                            level,
                            session: *session,
                        });
                        K::SetIsolation
                    }
                    None => K::Other,
                }
            }
            // Session settings and introspection touch no table rows.
            Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::Use(_)
            | Statement::Discard { .. }
            | Statement::UnlockTables => K::Other,
            Statement::Explain {
                statement, analyze, ..
            } => {
                if *analyze {
                    // EXPLAIN ANALYZE runs the statement.
                    self.dispatch(statement, fp)
                } else {
                    K::Other
                }
            }
            Statement::CreateTable(ct) => {
                self.exclusive(fp, &ct.name);
                if let Some(q) = &ct.query {
                    self.query(q);
                }
                K::Ddl
            }
            Statement::AlterTable { name, .. } => {
                self.exclusive(fp, name);
                K::Ddl
            }
            Statement::CreateIndex(ci) => {
                let table = self.object_name(&ci.table_name);
                let mode = if ci.concurrently {
                    TableLockMode::ShareUpdateExclusive
                } else {
                    TableLockMode::Share
                };
                fp.table_locks.push(TableLock {
                    table,
                    mode,
                    nowait: false,
                });
                K::Ddl
            }
            Statement::Truncate { table_names, .. } => {
                for t in table_names {
                    self.exclusive(fp, &t.name);
                }
                K::Ddl
            }
            Statement::Drop {
                object_type,
                names,
                table,
                ..
            } => {
                match object_type {
                    ObjectType::Table | ObjectType::View | ObjectType::MaterializedView => {
                        for n in names {
                            self.exclusive(fp, n);
                        }
                    }
                    ObjectType::Index => {
                        // Dropping an index changes plans, not results; only
                        // MySQL's `DROP INDEX … ON t` names the table.
                        if let Some(t) = table {
                            self.exclusive(fp, t);
                        }
                    }
                    _ => self.global = true,
                }
                K::Ddl
            }
            Statement::LockTables { tables } => {
                for t in tables {
                    let mode = match t.lock_type {
                        ast::LockTableType::Read { .. } => TableLockMode::Share,
                        ast::LockTableType::Write { .. } => TableLockMode::AccessExclusive,
                    };
                    fp.table_locks.push(TableLock {
                        table: self.ident(&t.table),
                        mode,
                        nowait: false,
                    });
                }
                K::Lock
            }
            Statement::CreateView { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateFunction(_)
            | Statement::CreateTrigger { .. }
            | Statement::CreateType { .. }
            | Statement::CreateExtension { .. }
            | Statement::AlterView { .. }
            | Statement::AlterIndex { .. }
            | Statement::AlterType(_)
            | Statement::DropFunction { .. }
            | Statement::DropTrigger { .. }
            | Statement::Comment { .. }
            | Statement::RenameTable(_) => {
                self.global = true;
                K::Ddl
            }
            // CALL, COPY, EXECUTE, DO, MERGE…: their effect is not bounded here.
            _ => {
                self.global = true;
                K::Other
            }
        }
    }

    fn exclusive(&mut self, fp: &mut Footprint, name: &ObjectName) {
        fp.table_locks.push(TableLock {
            table: self.object_name(name),
            mode: TableLockMode::AccessExclusive,
            nowait: false,
        });
    }

    // ---- names -------------------------------------------------------------

    /// Lower-cases unquoted identifiers (PostgreSQL folds them); SQLite and
    /// MySQL compare table names case-insensitively, so fold all there.
    fn ident(&self, id: &Ident) -> String {
        if id.quote_style.is_some() && self.dialect == Dialect::PostgreSql {
            id.value.clone()
        } else {
            id.value.to_lowercase()
        }
    }

    fn object_name(&self, name: &ObjectName) -> String {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(id) => self.ident(id),
                ObjectNamePart::Function(f) => self.ident(&f.name),
            })
            .collect();
        parts.join(".")
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        name.0.len() == 1 && self.ctes.contains(&self.object_name(name))
    }
}

fn isolation(modes: &[TransactionMode]) -> Option<IsolationLevel> {
    modes.iter().find_map(|m| match m {
        TransactionMode::IsolationLevel(l) => Some(match l {
            TransactionIsolationLevel::ReadUncommitted => IsolationLevel::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => IsolationLevel::ReadCommitted,
            TransactionIsolationLevel::RepeatableRead => IsolationLevel::RepeatableRead,
            // SQL Server's SNAPSHOT behaves like PostgreSQL's REPEATABLE READ.
            TransactionIsolationLevel::Serializable => IsolationLevel::Serializable,
            TransactionIsolationLevel::Snapshot => IsolationLevel::RepeatableRead,
        }),
        TransactionMode::AccessMode(_) => None,
    })
}
