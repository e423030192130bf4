//! Footprints as abstract resources for a generic DPOR engine.
//!
//! The engine knows objects, keys within an object (an exact key overlaps
//! only the same key; no key overlaps everything) and read/write modes. A
//! table becomes three objects: its data and two row-lock objects, so that a
//! plain `SELECT` (data read) commutes with `SELECT … FOR UPDATE` (data read
//! plus lock writes) while two `FOR UPDATE`s of one row do not. The two lock
//! objects, "key" (K) and "row" (R), encode PostgreSQL's four row-lock
//! strengths exactly: `FOR KEY SHARE` reads K; `FOR SHARE` reads K and R;
//! `FOR NO KEY UPDATE` reads K and writes R; `FOR UPDATE` writes both. One more object
//! stands for "the whole database": every non-inert footprint reads it and
//! unbounded ones (unparsed SQL, `COMMIT`) write it.
//!
//! Ids are FNV-1a 64 hashes of fixed strings, so they are stable across
//! processes and runs:
//! - data of table `t`: `fnv1a("table:" + t)`;
//! - row locks of `t`: `fnv1a("rowlock:key:" + t)` (K) and
//!   `fnv1a("rowlock:row:" + t)` (R);
//! - the database: `fnv1a("database")`;
//! - row key: `fnv1a(column + "\0" + canonical value)`, where the canonical
//!   value is `i:<int>`, `f:<bits hex>` or `s:<text>`.
//!
//! A key must identify rows the same way in every statement, so each table
//! gets one key column ([`KeyColumns`]); accesses not pinned on it use no key.

use std::collections::HashMap;

use crate::footprint::{base_name, AccessMode, Footprint, RowLockMode, TableLockMode};
use crate::value::Canon;

pub use frontrun_engine::hash::fnv1a;

/// Read or write of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceMode {
    Read,
    Write,
}

/// One abstract access: `key: None` means the whole resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub id: u64,
    pub key: Option<u64>,
    pub mode: ResourceMode,
}

/// The id of the whole-database resource.
pub fn database_resource() -> u64 {
    fnv1a(b"database")
}

/// The id of a table's data resource.
pub fn table_resource(table: &str) -> u64 {
    fnv1a(format!("table:{}", base_name(table)).as_bytes())
}

/// The ids of a table's two row-lock resources (K, R); see the module docs.
pub fn row_lock_resources(table: &str) -> (u64, u64) {
    let t = base_name(table);
    (
        fnv1a(format!("rowlock:key:{t}").as_bytes()),
        fnv1a(format!("rowlock:row:{t}").as_bytes()),
    )
}

/// The key of the rows where `column` equals a value of this class.
pub(crate) fn row_key(column: &str, canon: &Canon) -> Option<u64> {
    let v = match canon {
        Canon::Int(i) => format!("i:{i}"),
        Canon::FloatBits(b) => format!("f:{b:x}"),
        Canon::Text(s) => format!("s:{s}"),
        // `col = NULL` matches no row: nothing to key.
        Canon::Null => return None,
    };
    Some(fnv1a(format!("{column}\0{v}").as_bytes()))
}

/// Which column identifies rows of each table, for resource keys.
///
/// Declare it (`declare`, e.g. from the table's primary key) or let the
/// first pinned access of a table choose it. Keep one `KeyColumns` for a
/// whole exploration, so that a statement maps to the same resources in
/// every execution.
#[derive(Clone, Debug, Default)]
pub struct KeyColumns {
    columns: HashMap<String, String>,
}

impl KeyColumns {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fixes the key column of `table` (later declarations win).
    pub fn declare(&mut self, table: &str, column: &str) {
        self.columns
            .insert(base_name(table).to_string(), column.to_string());
    }

    pub fn get(&self, table: &str) -> Option<&str> {
        self.columns.get(base_name(table)).map(String::as_str)
    }

    fn get_or_learn(&mut self, table: &str, candidate: Option<&str>) -> Option<String> {
        if let Some(c) = self.get(table) {
            return Some(c.to_string());
        }
        let c = candidate?;
        self.declare(table, c);
        Some(c.to_string())
    }
}

impl Footprint {
    /// The footprint as engine resources; see the module docs for the model.
    /// Two footprints conflict by [`Footprint::conflicts`] only if some of
    /// their resources conflict (same id, overlapping keys, one write).
    pub fn resources(&self, keys: &mut KeyColumns) -> Vec<Resource> {
        use ResourceMode::{Read, Write};
        let mut out = Vec::new();
        if self.is_inert() {
            return out;
        }
        let db = database_resource();
        let unbounded = self.global || self.ends_transaction();
        out.push(Resource {
            id: db,
            key: None,
            mode: if unbounded { Write } else { Read },
        });
        for a in &self.accesses {
            let data = table_resource(&a.table);
            let (lock_k, lock_r) = row_lock_resources(&a.table);
            let key_col = keys.get_or_learn(&a.table, a.rows.first_column());
            let row_keys: Vec<Option<u64>> = match key_col
                .as_deref()
                .and_then(|c| a.rows.values_of(c).map(|v| (c, v)))
            {
                Some((c, vals)) => {
                    let ks: Vec<Option<u64>> = vals
                        .iter()
                        .filter_map(|v| row_key(c, &v.canon()))
                        .map(Some)
                        .collect();
                    // Only NULLs: no key names those rows; stay visible.
                    if ks.is_empty() {
                        vec![None]
                    } else {
                        ks
                    }
                }
                None => vec![None],
            };
            let data_mode = match a.mode {
                AccessMode::Read => Read,
                AccessMode::Write => Write,
            };
            // (mode on K, mode on R)
            let lock_modes = a.lock.map(|l| match l.mode {
                RowLockMode::KeyShare => (Read, None),
                RowLockMode::Share => (Read, Some(Read)),
                RowLockMode::NoKeyUpdate => (Read, Some(Write)),
                RowLockMode::Update => (Write, Some(Write)),
            });
            for key in row_keys {
                out.push(Resource {
                    id: data,
                    key,
                    mode: data_mode,
                });
                if let Some((k_mode, r_mode)) = lock_modes {
                    out.push(Resource {
                        id: lock_k,
                        key,
                        mode: k_mode,
                    });
                    if let Some(mode) = r_mode {
                        out.push(Resource {
                            id: lock_r,
                            key,
                            mode,
                        });
                    }
                }
            }
        }
        for l in &self.table_locks {
            // Share blocks writers only; the stronger modes block everyone.
            let (data_mode, lock_mode) = match l.mode {
                TableLockMode::AccessShare | TableLockMode::RowShare => continue,
                TableLockMode::Share => (Read, Read),
                _ => (Write, Write),
            };
            out.push(Resource {
                id: table_resource(&l.table),
                key: None,
                mode: data_mode,
            });
            let (lock_k, lock_r) = row_lock_resources(&l.table);
            for id in [lock_k, lock_r] {
                out.push(Resource {
                    id,
                    key: None,
                    mode: lock_mode,
                });
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether two resource lists (of different threads) conflict, by the same
/// rule a generic engine applies.
pub fn resources_conflict(a: &[Resource], b: &[Resource]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.id == y.id
                && (x.mode == ResourceMode::Write || y.mode == ResourceMode::Write)
                && match (x.key, y.key) {
                    (Some(p), Some(q)) => p == q,
                    _ => true,
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_columns_learn_once_and_honour_declarations() {
        let mut k = KeyColumns::new();
        assert_eq!(
            k.get_or_learn("accounts", Some("name")).as_deref(),
            Some("name")
        );
        assert_eq!(
            k.get_or_learn("public.accounts", Some("id")).as_deref(),
            Some("name")
        );
        k.declare("accounts", "id");
        assert_eq!(k.get("accounts"), Some("id"));
        assert_eq!(k.get_or_learn("counts", None), None);
    }
}
