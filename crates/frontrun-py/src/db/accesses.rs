//! From footprint resources to engine accesses.
//!
//! Data resources become reads and writes. Row locks become lock
//! acquisitions (`Acquire`) of one object per locked row, released by the
//! transaction's `COMMIT`/`ROLLBACK` (`Release`). That is what lets DPOR try
//! both orders of two transactions that lock the same row: with plain writes
//! the lock holder's later statements would order the two lockers and hide
//! their race. A lock a transaction already holds is not acquired again.
//!
//! A statement that locks a row does not also *read* it: every writer of the
//! row holds the row lock until it commits, so the lock order already orders
//! the read after them (and a read access would hide the lockers' race).
//!
//! Locks on unpinned rows (`Key::Any`) cannot name their rows, so each lock
//! also touches a per-table marker: read by row locks, written by
//! whole-table ones, so that a whole-table lock conflicts with every row lock
//! of the table while row locks of different rows stay independent.

use std::collections::{BTreeSet, HashMap};

use frontrun_engine::event::{Access, AccessKind, Key};
use frontrun_sql::resources::{database_resource, fnv1a, row_lock_resources, table_resource};
use frontrun_sql::{Footprint, KeyColumns, Resource, ResourceMode};

/// Lock objects each open transaction has acquired.
pub(crate) type Held = HashMap<u64, BTreeSet<u64>>;

/// Distinguishes the marker object from the lock objects of a table.
const MARKER: u64 = 0x6d61_726b_6572_0001;

/// For each row-lock resource id of the tables `fp` touches, the table's
/// canonical lock id (the "key" lock object; both map to it).
fn lock_ids(fp: &Footprint) -> HashMap<u64, u64> {
    let tables = fp
        .accesses
        .iter()
        .map(|a| a.table.as_str())
        .chain(fp.table_locks.iter().map(|l| l.table.as_str()));
    let mut out = HashMap::new();
    for t in tables {
        let (k, r) = row_lock_resources(t);
        out.insert(k, k);
        out.insert(r, k);
    }
    out
}

fn data_access(r: &Resource, salt: u64, promote_reads: bool) -> Access {
    let kind = match r.mode {
        ResourceMode::Write => AccessKind::Write,
        ResourceMode::Read if promote_reads => AccessKind::Write,
        ResourceMode::Read => AccessKind::Read,
    };
    Access {
        obj: r.id ^ salt,
        key: r.key.map_or(Key::Any, Key::Exact),
        kind,
    }
}

fn lock_object(lock_id: u64, key: Option<u64>, salt: u64) -> u64 {
    let mixed = match key {
        Some(k) => {
            let mut bytes = lock_id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&k.to_le_bytes());
            fnv1a(&bytes)
        }
        None => lock_id,
    };
    mixed ^ salt
}

/// Accesses of a statement (not ending its transaction) of `txn`.
pub(crate) fn statement(
    fp: &Footprint,
    keys: &mut KeyColumns,
    held: &mut Held,
    txn: u64,
    salt: u64,
) -> Vec<Access> {
    let locks = lock_ids(fp);
    let resources = fp.resources(keys);
    // (table data id, row key) of every row this statement locks.
    let locked: Vec<(u64, Option<u64>)> = fp
        .accesses
        .iter()
        .filter(|a| a.lock.is_some())
        .flat_map(|a| {
            let data = table_resource(&a.table);
            let (k, _) = row_lock_resources(&a.table);
            resources
                .iter()
                .filter(move |r| r.id == k)
                .map(move |r| (data, r.key))
        })
        .collect();
    let mut out = Vec::new();
    for r in resources.iter().copied() {
        let Some(&lock_id) = locks.get(&r.id) else {
            let covered = r.mode == ResourceMode::Read && locked.contains(&(r.id, r.key));
            if !covered {
                out.push(data_access(&r, salt, false));
            }
            continue;
        };
        let obj = lock_object(lock_id, r.key, salt);
        if held.entry(txn).or_default().insert(obj) {
            out.push(Access {
                obj,
                key: Key::Any,
                kind: AccessKind::Acquire,
            });
            out.push(Access {
                obj: lock_id ^ MARKER ^ salt,
                key: Key::Any,
                kind: if r.key.is_some() {
                    AccessKind::Read
                } else {
                    AccessKind::Write
                },
            });
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Accesses of the `COMMIT`/`ROLLBACK` of `txn`, which did `done`: it
/// publishes the data it wrote (and, under SERIALIZABLE, its reads matter
/// too) and releases its locks.
pub(crate) fn end(
    done: Option<&Footprint>,
    keys: &mut KeyColumns,
    held: &mut Held,
    txn: u64,
    salt: u64,
    serializable: bool,
) -> Vec<Access> {
    let mut out = Vec::new();
    if let Some(done) = done {
        let locks = lock_ids(done);
        for r in done.resources(keys) {
            if !locks.contains_key(&r.id) {
                // Every statement reads the database resource; promoting it
                // would make the commit conflict with everything.
                let promote = serializable && r.id != database_resource();
                out.push(data_access(&r, salt, promote));
            }
        }
    }
    for obj in held.remove(&txn).unwrap_or_default() {
        out.push(Access {
            obj,
            key: Key::Any,
            kind: AccessKind::Release,
        });
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Accesses of an unbounded statement (unparsed SQL): it conflicts with
/// every statement of the database.
pub(crate) fn global(fp: &Footprint, keys: &mut KeyColumns, salt: u64) -> Vec<Access> {
    fp.resources(keys)
        .iter()
        .map(|r| data_access(r, salt, false))
        .collect()
}

/// SQLite's database write lock, taken by a transaction's first write.
pub(crate) fn acquire_database(held: &mut Held, txn: u64, salt: u64, out: &mut Vec<Access>) {
    let obj = fnv1a(b"sqlite:write-lock") ^ salt;
    if held.entry(txn).or_default().insert(obj) {
        out.push(Access {
            obj,
            key: Key::Any,
            kind: AccessKind::Acquire,
        });
    }
}
