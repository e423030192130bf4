//! SQL footprints: which tables and rows a statement reads, writes or locks.
//!
//! During exploration every `execute` on a database connection is a
//! scheduling point. Its [`Footprint`] tells the engine which statements
//! conflict, so that statements on disjoint rows or tables are not reordered
//! needlessly.
//!
//! # API
//!
//! - [`analyse`]`(sql, params, dialect) -> Footprint` — positional parameters
//!   (`%s`, `?`, `$1`); [`analyse_with`] also takes named ones (`%(name)s`,
//!   `:name`). Results are cached by SQL text; [`analyse_uncached`] skips
//!   the cache.
//! - [`Footprint::conflicts`] — whether two statements of different
//!   transactions must not be reordered.
//! - [`Footprint::resources`] — the footprint as `(id, key, mode)` resources
//!   for a generic engine, with stable FNV-1a ids (see [`resources`]).
//! - [`Footprint::describe`] — short text such as
//!   `write accounts[name='alice'] (row lock)`.
//! - [`LockTable`] — predicts whether a statement would wait for a row or
//!   table lock of another open transaction.
//!
//! ```
//! use frontrun_sql::{analyse, Dialect, LockTable, Param, Prediction};
//!
//! let pg = Dialect::PostgreSql;
//! let read = analyse("SELECT balance FROM accounts WHERE name='alice'", &[], pg);
//! let write = analyse("UPDATE accounts SET balance=%s WHERE name=%s",
//!                     &[Param::Int(1100), Param::Text("alice".into())], pg);
//! let other = analyse("UPDATE accounts SET balance=%s WHERE name=%s",
//!                     &[Param::Int(5), Param::Text("bob".into())], pg);
//! assert!(read.conflicts(&write) && !read.conflicts(&other));
//! assert_eq!(write.describe(), "write accounts[name='alice'] (row lock)");
//!
//! let mut locks = LockTable::new();
//! locks.apply(1, &write);
//! assert_eq!(locks.predict(2, &write), Prediction::Blocks(vec![1]));
//! // Another row, but `balance` might be unique: only the server knows.
//! assert_eq!(locks.predict(2, &other), Prediction::Unknown);
//! assert_eq!(locks.predict(2, &read), Prediction::Proceeds);
//! ```
//!
//! # Soundness
//!
//! A footprint over-approximates: rows not pinned by an equality in the
//! WHERE clause are `Rows::All`; statements that cannot be parsed or bounded
//! set [`Footprint::global`] and conflict with everything on the database.
//! Known gaps: user-defined functions and triggers are assumed not to touch
//! other tables; the schema of a table is ignored when matching tables
//! (a conservative merge); MySQL's case-insensitive collations are handled
//! by folding text values to lower case for that dialect; a `%s` inside a
//! quoted literal is left alone, although psycopg would substitute it (and
//! so number later parameters differently).

pub mod accesses;
pub mod anomaly;
mod describe;
mod extract;
mod footprint;
mod lex;
mod lock_stmt;
mod locks;
pub mod model;
pub mod resources;
mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

pub use footprint::{
    AccessMode, Footprint, IsolationLevel, RowLock, RowLockMode, Rows, StatementKind, TableAccess,
    TableLock, TableLockMode, TxnControl,
};
pub use locks::{LockTable, Prediction, TxnId};
pub use resources::{KeyColumns, Resource, ResourceMode};
pub use value::{Param, Params, Value};

use extract::{Extractor, Operand, Template};
use lex::ParamSlot;

/// The SQL dialect, which decides placeholder syntax, quoting and parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    PostgreSql,
    Sqlite,
    MySql,
}

/// Footprint of `sql` executed with positional parameters.
pub fn analyse(sql: &str, params: &[Param], dialect: Dialect) -> Footprint {
    analyse_with(sql, Params::positional(params), dialect)
}

/// Footprint of `sql` executed with positional and/or named parameters.
pub fn analyse_with(sql: &str, params: Params<'_>, dialect: Dialect) -> Footprint {
    cached_templates(sql, dialect)
        .iter()
        .map(|t| instantiate(t, params, dialect))
        .reduce(|mut a, b| {
            a.union(b);
            a
        })
        .unwrap_or_default()
}

/// Like [`analyse_with`], but parses every time.
pub fn analyse_uncached(sql: &str, params: Params<'_>, dialect: Dialect) -> Footprint {
    templates(sql, dialect)
        .iter()
        .map(|t| instantiate(t, params, dialect))
        .reduce(|mut a, b| {
            a.union(b);
            a
        })
        .unwrap_or_default()
}

/// Statement texts recur in every execution of an exploration; parsing is
/// the expensive part, so templates are kept per `(dialect, text)`. The cache
/// is emptied when full rather than tracking recency: a workload has few
/// distinct texts, and a clear costs only re-parsing.
const CACHE_CAPACITY: usize = 4096;

/// One map per dialect, so lookups borrow the text instead of allocating a key.
type TemplateCache = [HashMap<String, Arc<Vec<Template>>>; 3];

fn cached_templates(sql: &str, dialect: Dialect) -> Arc<Vec<Template>> {
    static CACHE: OnceLock<Mutex<TemplateCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Default::default()));
    let slot = dialect as usize;
    // A poisoned lock only means another thread panicked mid-insert; the map
    // itself is still a valid map.
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner())[slot].get(sql) {
        return Arc::clone(t);
    }
    let t = Arc::new(templates(sql, dialect));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c[slot].len() >= CACHE_CAPACITY {
        c[slot].clear();
    }
    c[slot].insert(sql.to_string(), Arc::clone(&t));
    t
}

fn templates(sql: &str, dialect: Dialect) -> Vec<Template> {
    lex::split(sql, dialect)
        .iter()
        .map(|piece| {
            if piece.first_word == "LOCK" && dialect != Dialect::MySql {
                return match lock_stmt::parse_pg_lock(&piece.text, dialect) {
                    Ok(locks) => {
                        let mut base = Footprint {
                            kind: StatementKind::Lock,
                            kinds: vec![StatementKind::Lock],
                            ..Footprint::default()
                        };
                        base.table_locks = locks;
                        Template {
                            base,
                            accesses: Vec::new(),
                        }
                    }
                    Err(e) => unparsed(e),
                };
            }
            let parsed = match dialect {
                Dialect::PostgreSql => Parser::parse_sql(&PostgreSqlDialect {}, &piece.text),
                Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, &piece.text),
                Dialect::MySql => Parser::parse_sql(&MySqlDialect {}, &piece.text),
            };
            match parsed {
                Ok(stmts) => stmts
                    .iter()
                    .map(|st| Extractor::new(piece, dialect).statement(st))
                    .reduce(|mut a, b| {
                        a.base.union(b.base);
                        a.accesses.extend(b.accesses);
                        a
                    })
                    .unwrap_or_default(),
                Err(e) => unparsed(e.to_string()),
            }
        })
        .collect()
}

fn unparsed(message: String) -> Template {
    Template {
        base: Footprint {
            kinds: vec![StatementKind::Other],
            unparsed: true,
            parse_error: Some(message),
            global: true,
            ..Footprint::default()
        },
        accesses: Vec::new(),
    }
}

fn instantiate(t: &Template, params: Params<'_>, dialect: Dialect) -> Footprint {
    let mut fp = t.base.clone();
    for a in &t.accesses {
        let mut keys = Vec::new();
        for (col, ops) in &a.pins {
            if let Some(values) = resolve(ops, params) {
                keys.extend(values.into_iter().map(|v| (col.clone(), fold(v, dialect))));
            }
        }
        let access = TableAccess {
            table: a.table.clone(),
            mode: a.mode,
            rows: if keys.is_empty() {
                Rows::All
            } else {
                Rows::Keys(keys)
            },
            lock: a.lock,
            changes: a.changes.clone(),
        };
        if !fp.accesses.contains(&access) {
            fp.accesses.push(access);
        }
    }
    fp
}

/// The values a column may equal, or `None` when some operand is unknown
/// (then the column does not pin rows at all).
fn resolve(ops: &[Operand], params: Params<'_>) -> Option<Vec<Value>> {
    let lookup = |slot: &ParamSlot| match slot {
        ParamSlot::Positional(i) => params.positional.get(*i),
        ParamSlot::Named(n) => params.get_named(n),
    };
    let mut out = Vec::new();
    for op in ops {
        match op {
            Operand::Lit(v) => out.push(v.clone()),
            Operand::Param(slot) => out.push(Value::from_param(lookup(slot)?)?),
            Operand::ParamList(slot) => match lookup(slot)? {
                Param::List(items) => {
                    for p in items {
                        out.push(Value::from_param(p)?);
                    }
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

/// MySQL's default collations compare text case-insensitively.
fn fold(v: Value, dialect: Dialect) -> Value {
    match (v, dialect) {
        (Value::Text(s), Dialect::MySql) => Value::Text(s.to_lowercase()),
        (v, _) => v,
    }
}
