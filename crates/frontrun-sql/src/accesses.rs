//! From footprint resources to engine accesses.
//!
//! The model follows PostgreSQL's MVCC: what a transaction writes is invisible
//! to others until its `COMMIT`, and writers of one row are ordered by the
//! row lock they take, held until `COMMIT`/`ROLLBACK`. So:
//!
//! - **Row locks** (`UPDATE`, `DELETE`, `SELECT … FOR UPDATE/SHARE`, upserts,
//!   and `INSERT`, which holds the new key until it ends) become lock
//!   acquisitions (`Acquire`) of one object per locked row, released by the
//!   transaction's end (`Release`). DPOR tries both orders of two
//!   transactions that lock the same row. A lock a transaction already holds
//!   is not acquired again.
//! - **Data** is written by the `COMMIT` only (it publishes the rows the
//!   transaction wrote); plain reads read it. A statement that locks a row
//!   neither reads nor writes its data: every writer of the row holds its
//!   lock until it ends, so the lock order already orders them.
//! - **Snapshots**: a REPEATABLE READ or SERIALIZABLE transaction's first
//!   statement takes its snapshot. It reads one "commits" object that every
//!   committing writer writes (each under its own key, so that commits do
//!   not conflict with each other through it).
//! - **SERIALIZABLE**: whether a transaction fails depends on the order of
//!   every statement and commit of the serializable transactions, so they all
//!   write one object; they also read the commits object.
//! - **Unique columns**: an `INSERT` or `DELETE` adds or removes a value of
//!   every unique column of its table, and an `UPDATE` of the columns it
//!   assigns; another writer may wait for it and fail or succeed depending
//!   on how it ended. They write a per-table object, under the changed
//!   column's key (every key for inserts and deletes), at the statement's
//!   lock point (the check happens when the row is written, and may wait). Where the table's
//!   unique columns are not known ([`Uniques`]), every assigned column counts.
//!
//! A statement that takes locks is split in two scheduling points: first its
//! reads (the scan and snapshot happen before any lock wait), then its lock
//! acquisitions. The acquisitions then carry no access that conflicts with a
//! `COMMIT`; if they did, the commit→statement edge would hide the race of
//! two acquisitions of a row from the search.
//!
//! Locks on unpinned rows (`Key::Any`) cannot name their rows, so each lock
//! also touches a per-table marker: read by row locks, written by
//! whole-table ones, so that a whole-table lock conflicts with every row lock
//! of the table while row locks of different rows stay independent.

use std::collections::{BTreeSet, HashMap};

use crate::resources::{database_resource, fnv1a, row_lock_resources, table_resource};
use crate::{AccessMode, Footprint, KeyColumns, Resource, ResourceMode, Rows, TableAccess};
use frontrun_engine::event::{Access, AccessKind, Key};

/// Lock objects each open transaction has acquired.
pub type Held = HashMap<u64, BTreeSet<u64>>;

/// The columns of each table (by its data resource id) that a unique index
/// covers, where known (PostgreSQL's catalog).
pub type Uniques = HashMap<u64, Vec<String>>;

/// Distinguishes the marker object from the lock objects of a table.
const MARKER: u64 = 0x6d61_726b_6572_0001;

/// How the transaction running a statement sees the database.
#[derive(Clone, Copy, Debug, Default)]
pub struct Isolation {
    /// The statement takes the transaction's snapshot (first statement of a
    /// REPEATABLE READ or SERIALIZABLE transaction).
    pub snapshot: bool,
    pub serializable: bool,
}

/// The accesses of one statement, in the order they happen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parts {
    /// Snapshot and scan.
    pub reads: Vec<Access>,
    /// Row-lock acquisitions and unique-key checks (the point where the
    /// statement may wait).
    pub locks: Vec<Access>,
    /// The statement takes its transaction's snapshot (in `reads`).
    pub snapshot: bool,
}

impl Parts {
    /// Both parts as one event (for sinks that see a statement at once).
    pub fn joined(mut self) -> Vec<Access> {
        self.reads.extend(self.locks);
        self.reads.sort_unstable();
        self.reads.dedup();
        self.reads
    }
}

/// The object every committing writer writes (under its transaction's key)
/// and every snapshot reads.
fn commits_object(salt: u64) -> u64 {
    fnv1a(b"commits") ^ salt
}

/// The object every statement and end of a SERIALIZABLE transaction writes.
fn serializable_object(salt: u64) -> u64 {
    fnv1a(b"serializable") ^ salt
}

/// The per-table object that orders writes of its unique columns.
fn unique_object(table: &str, salt: u64) -> u64 {
    let (k, _) = row_lock_resources(table);
    fnv1a(&[b"unique:".as_slice(), &k.to_le_bytes()].concat()) ^ salt
}

/// The unique-column writes of the write access `a` (see the module docs).
fn unique_writes(a: &TableAccess, uniques: &Uniques, salt: u64, out: &mut Vec<Access>) {
    let obj = unique_object(&a.table, salt);
    let Some(cols) = &a.changes else {
        out.push(Access {
            obj,
            key: Key::Any,
            kind: AccessKind::Write,
        });
        return;
    };
    let known = uniques.get(&table_resource(&a.table));
    for col in cols {
        if known.is_none_or(|u| u.contains(col)) {
            out.push(Access {
                obj,
                key: Key::Exact(fnv1a(col.as_bytes())),
                kind: AccessKind::Write,
            });
        }
    }
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

/// The resources of one table access alone.
fn access_resources(a: &TableAccess, keys: &mut KeyColumns) -> Vec<Resource> {
    let single = Footprint {
        accesses: vec![a.clone()],
        ..Footprint::default()
    };
    single.resources(keys)
}

/// Acquire the lock object of `(table, key)` for `txn` unless it holds it.
fn acquire(
    held: &mut Held,
    txn: u64,
    table: &str,
    key: Option<u64>,
    salt: u64,
    out: &mut Vec<Access>,
) {
    let (lock_id, _) = row_lock_resources(table);
    let obj = lock_object(lock_id, key, salt);
    if held.entry(txn).or_default().insert(obj) {
        out.push(Access {
            obj,
            key: Key::Any,
            kind: AccessKind::Acquire,
        });
        out.push(Access {
            obj: lock_id ^ MARKER ^ salt,
            key: Key::Any,
            kind: if key.is_some() {
                AccessKind::Read
            } else {
                AccessKind::Write
            },
        });
    }
}

/// A statement that reads no table but takes its transaction's snapshot.
pub fn snapshot_only(salt: u64) -> Parts {
    Parts {
        reads: vec![Access {
            obj: commits_object(salt),
            key: Key::Any,
            kind: AccessKind::Read,
        }],
        locks: Vec::new(),
        snapshot: true,
    }
}

/// Accesses of a statement (not ending its transaction) of `txn`.
pub fn statement(
    fp: &Footprint,
    keys: &mut KeyColumns,
    uniques: &Uniques,
    held: &mut Held,
    txn: u64,
    salt: u64,
    iso: Isolation,
) -> Parts {
    let mut parts = Parts::default();
    if fp.is_inert() {
        return parts;
    }
    parts.reads.push(Access {
        obj: database_resource() ^ salt,
        key: Key::Any,
        kind: AccessKind::Read,
    });
    for a in &fp.accesses {
        let data = table_resource(&a.table);
        let (lock_k, lock_r) = row_lock_resources(&a.table);
        let rs = access_resources(a, keys);
        let data_keys = rs.iter().filter(|r| r.id == data).map(|r| r.key);
        match (a.mode, a.lock.is_some()) {
            // A plain read: it sees committed data.
            (AccessMode::Read, false) => {
                for r in rs.iter().filter(|r| r.id == data) {
                    parts.reads.push(data_access(r, salt, false));
                }
            }
            // A locking read, UPDATE, DELETE or upsert: the row locks.
            (_, true) => {
                if matches!(a.rows, Rows::All) {
                    // A predicate: which rows the scan finds (and so locks)
                    // depends on the commits before it: a row inserted, or
                    // changed to match, and committed after the scan is
                    // not seen, even once a lock wait is over.
                    for r in rs.iter().filter(|r| r.id == data) {
                        parts.reads.push(Access {
                            kind: AccessKind::Read,
                            ..data_access(r, salt, false)
                        });
                    }
                }
                let locked: BTreeSet<Option<u64>> = rs
                    .iter()
                    .filter(|r| r.id == lock_k || r.id == lock_r)
                    .map(|r| r.key)
                    .collect();
                for key in locked {
                    acquire(held, txn, &a.table, key, salt, &mut parts.locks);
                }
            }
            // A plain INSERT: holds its new key until it ends.
            (AccessMode::Write, false) => {
                let new: BTreeSet<Option<u64>> = data_keys.collect();
                for key in new {
                    acquire(held, txn, &a.table, key, salt, &mut parts.locks);
                }
            }
        }
        if a.mode == AccessMode::Write {
            // The unique check happens where the row is written, after the
            // row lock: it may wait there for the transaction holding the
            // same value, so it belongs to the lock point, ordered with the
            // other writers' calls (reads-side, their calls' order stayed
            // free and the wait a second writer meets was never explored).
            unique_writes(a, uniques, salt, &mut parts.locks);
        }
    }
    for l in &fp.table_locks {
        // An explicit table lock (`LOCK TABLE`, DDL) held until the end:
        // the whole-table lock object, and the data it keeps others from.
        let single = Footprint {
            table_locks: vec![l.clone()],
            ..Footprint::default()
        };
        let data = table_resource(&l.table);
        let rs = single.resources(keys);
        for r in rs.iter().filter(|r| r.id == data) {
            parts.reads.push(data_access(r, salt, false));
        }
        if rs
            .iter()
            .any(|r| r.id != data && r.id != database_resource())
        {
            acquire(held, txn, &l.table, None, salt, &mut parts.locks);
        }
    }
    parts.snapshot = iso.snapshot;
    if iso.snapshot || iso.serializable {
        parts.reads.push(Access {
            obj: commits_object(salt),
            key: Key::Any,
            kind: AccessKind::Read,
        });
    }
    if iso.serializable {
        parts.reads.push(Access {
            obj: serializable_object(salt),
            key: Key::Any,
            kind: AccessKind::Write,
        });
    }
    for part in [&mut parts.reads, &mut parts.locks] {
        part.sort_unstable();
        part.dedup();
    }
    parts
}

/// Accesses of the end of `txn`, which did `done`: a `COMMIT` publishes the
/// rows it wrote (under SERIALIZABLE its reads matter too); either end
/// releases its locks.
pub fn end(
    done: Option<&Footprint>,
    keys: &mut KeyColumns,
    held: &mut Held,
    txn: u64,
    salt: u64,
    commit: bool,
    serializable: bool,
) -> Vec<Access> {
    let mut out = Vec::new();
    if let Some(done) = done.filter(|d| !d.is_inert()) {
        let mut wrote = false;
        for a in &done.accesses {
            let data = table_resource(&a.table);
            for r in access_resources(a, keys).iter().filter(|r| r.id == data) {
                if a.mode == AccessMode::Write {
                    wrote = true;
                    if commit {
                        out.push(data_access(r, salt, false));
                    }
                } else if serializable {
                    out.push(data_access(r, salt, true));
                }
            }
        }
        if wrote && commit {
            out.push(Access {
                obj: commits_object(salt),
                key: Key::Exact(txn),
                kind: AccessKind::Write,
            });
        }
        if serializable {
            out.push(Access {
                obj: serializable_object(salt),
                key: Key::Any,
                kind: AccessKind::Write,
            });
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
pub fn global(fp: &Footprint, keys: &mut KeyColumns, salt: u64) -> Vec<Access> {
    let mut out: Vec<Access> = fp
        .resources(keys)
        .iter()
        .map(|r| data_access(r, salt, false))
        .collect();
    // It may also commit or take a snapshot.
    out.push(Access {
        obj: commits_object(salt),
        key: Key::Any,
        kind: AccessKind::Write,
    });
    out.push(Access {
        obj: serializable_object(salt),
        key: Key::Any,
        kind: AccessKind::Write,
    });
    out
}

/// SQLite's database write lock, taken by a transaction's first write.
pub fn acquire_database(held: &mut Held, txn: u64, salt: u64, out: &mut Vec<Access>) {
    let obj = fnv1a(b"sqlite:write-lock") ^ salt;
    if held.entry(txn).or_default().insert(obj) {
        out.push(Access {
            obj,
            key: Key::Any,
            kind: AccessKind::Acquire,
        });
    }
}
