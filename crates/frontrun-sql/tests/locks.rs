//! The lock-wait model on the seed workloads.

use frontrun_sql::{analyse, AccessMode, Dialect, Footprint, LockTable, Prediction, Rows};

fn pg(sql: &str) -> Footprint {
    analyse(sql, &[], Dialect::PostgreSql)
}

const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;
const LOCK_ALICE: &str = "SELECT * FROM accounts WHERE name='alice' FOR UPDATE";
const LOCK_BOB: &str = "SELECT * FROM accounts WHERE name='bob' FOR UPDATE";

#[test]
fn for_update_blocks_the_same_row_only_until_commit() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("BEGIN"));
    locks.apply(A, &pg(LOCK_ALICE));
    assert_eq!(locks.holders(), [A]);
    assert_eq!(
        locks.predict(B, &pg(LOCK_ALICE)),
        Prediction::Blocks(vec![A])
    );
    assert_eq!(locks.predict(B, &pg(LOCK_BOB)), Prediction::Proceeds);
    assert_eq!(
        locks.predict(A, &pg(LOCK_ALICE)),
        Prediction::Proceeds,
        "own locks never block"
    );
    assert_eq!(
        locks.predict(B, &pg("SELECT balance FROM accounts WHERE name='alice'")),
        Prediction::Proceeds,
        "plain reads take no row lock"
    );
    assert_eq!(
        locks.predict(B, &pg("UPDATE accounts SET balance = 0 WHERE name='alice'")),
        Prediction::Blocks(vec![A])
    );
    locks.apply(A, &pg("COMMIT"));
    assert!(locks.holders().is_empty());
    assert_eq!(locks.predict(B, &pg(LOCK_ALICE)), Prediction::Proceeds);
}

#[test]
fn rollback_releases_too() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg(LOCK_ALICE));
    locks.apply(A, &pg("ROLLBACK"));
    assert_eq!(locks.predict(B, &pg(LOCK_ALICE)), Prediction::Proceeds);
}

#[test]
fn deadlock_seed_forms_a_cycle() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg(LOCK_ALICE));
    locks.apply(B, &pg(LOCK_BOB));
    assert_eq!(locks.predict(A, &pg(LOCK_BOB)), Prediction::Blocks(vec![B]));
    assert_eq!(
        locks.predict(B, &pg(LOCK_ALICE)),
        Prediction::Blocks(vec![A])
    );
    // The fix: one statement locking both in order waits for whoever holds either.
    let both = pg(
        "SELECT * FROM accounts WHERE name = ANY(ARRAY['alice','bob']) ORDER BY name FOR UPDATE",
    );
    assert_eq!(locks.predict(C, &both), Prediction::Blocks(vec![A, B]));
}

#[test]
fn lock_strengths_follow_postgresql() {
    let mut locks = LockTable::new();
    locks.apply(
        A,
        &pg("SELECT * FROM accounts WHERE name='alice' FOR KEY SHARE"),
    );
    let no_key = pg("SELECT * FROM accounts WHERE name='alice' FOR NO KEY UPDATE");
    assert_eq!(locks.predict(B, &no_key), Prediction::Proceeds);
    assert_eq!(
        locks.predict(B, &pg(LOCK_ALICE)),
        Prediction::Blocks(vec![A])
    );
    let mut shared = LockTable::new();
    shared.apply(
        A,
        &pg("SELECT * FROM accounts WHERE name='alice' FOR SHARE"),
    );
    assert_eq!(
        shared.predict(
            B,
            &pg("SELECT * FROM accounts WHERE name='alice' FOR SHARE")
        ),
        Prediction::Proceeds
    );
}

#[test]
fn nowait_fails_and_skip_locked_proceeds() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg(LOCK_ALICE));
    let nowait = pg("SELECT * FROM accounts WHERE name='alice' FOR UPDATE NOWAIT");
    assert_eq!(locks.predict(B, &nowait), Prediction::FailsNowait(vec![A]));
    let skip = pg("SELECT * FROM accounts WHERE name='alice' FOR UPDATE SKIP LOCKED");
    assert_eq!(locks.predict(B, &skip), Prediction::Proceeds);
}

#[test]
fn unpinned_or_differently_pinned_rows_are_unknown() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("SELECT counter FROM counts FOR UPDATE"));
    assert_eq!(
        locks.predict(B, &pg("SELECT counter FROM counts FOR UPDATE")),
        Prediction::Unknown
    );
    assert_eq!(
        locks.predict(B, &pg(LOCK_ALICE)),
        Prediction::Proceeds,
        "another table"
    );
    locks.apply(A, &pg(LOCK_ALICE));
    assert_eq!(
        locks.predict(B, &pg("SELECT * FROM accounts WHERE id = 1 FOR UPDATE")),
        Prediction::Unknown,
        "id = 1 may or may not be alice"
    );
    assert_eq!(locks.predict(B, &pg("SELEKT")), Prediction::Unknown);
    let mut opaque = LockTable::new();
    opaque.apply(A, &pg("CALL lock_everything()"));
    assert_eq!(opaque.holders(), [A]);
    assert_eq!(
        opaque.predict(B, &pg(LOCK_ALICE)),
        Prediction::Unknown,
        "A's locks are unknown"
    );
}

#[test]
fn inserts_with_a_possible_unique_collision_are_unknown() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("INSERT INTO accounts (name) VALUES ('carol')"));
    assert_eq!(
        locks.predict(B, &pg("INSERT INTO accounts (name) VALUES ('carol')")),
        Prediction::Unknown
    );
    // Another unique column (not known here) may collide too.
    assert_eq!(
        locks.predict(B, &pg("INSERT INTO accounts (name) VALUES ('dave')")),
        Prediction::Unknown
    );
}

#[test]
fn table_locks_are_decided() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("LOCK TABLE accounts IN SHARE MODE"));
    assert_eq!(
        locks.predict(B, &pg("UPDATE accounts SET balance = 1 WHERE name = 'bob'")),
        Prediction::Blocks(vec![A])
    );
    assert_eq!(
        locks.predict(B, &pg("SELECT * FROM accounts")),
        Prediction::Proceeds
    );
    assert_eq!(
        locks.predict(B, &pg("LOCK TABLE accounts IN SHARE MODE")),
        Prediction::Proceeds
    );
    assert_eq!(
        locks.predict(B, &pg("LOCK TABLE accounts IN EXCLUSIVE MODE NOWAIT")),
        Prediction::FailsNowait(vec![A])
    );
    locks.apply(B, &pg("SELECT * FROM counts"));
    assert_eq!(
        locks.predict(C, &pg("TRUNCATE counts")),
        Prediction::Blocks(vec![B]),
        "readers hold ACCESS SHARE"
    );
}

#[test]
fn rollback_to_savepoint_gives_back_later_locks() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg(LOCK_ALICE));
    locks.apply(A, &pg("SAVEPOINT s1"));
    locks.apply(A, &pg(LOCK_BOB));
    assert_eq!(locks.predict(B, &pg(LOCK_BOB)), Prediction::Blocks(vec![A]));
    locks.apply(A, &pg("ROLLBACK TO SAVEPOINT s1"));
    assert_eq!(locks.predict(B, &pg(LOCK_BOB)), Prediction::Proceeds);
    assert_eq!(
        locks.predict(B, &pg(LOCK_ALICE)),
        Prediction::Blocks(vec![A]),
        "earlier locks stay"
    );
}

#[test]
fn transaction_footprint_accumulates_for_commit_tests() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("BEGIN"));
    locks.apply(A, &pg("SELECT balance FROM accounts WHERE name='alice'"));
    locks.apply(A, &pg("UPDATE accounts SET balance = 1 WHERE name='alice'"));
    let txn = locks.transaction_footprint(A).expect("A is open").clone();
    let writes: Vec<_> = txn
        .accesses
        .iter()
        .filter(|a| a.mode == AccessMode::Write)
        .collect();
    assert_eq!(writes.len(), 1);
    assert!(matches!(&writes[0].rows, Rows::Keys(k) if k.len() == 1));
    assert!(txn.conflicts(&pg("SELECT balance FROM accounts WHERE name='alice'")));
    assert!(!txn.conflicts(&pg("SELECT balance FROM accounts WHERE name='bob'")));
    locks.end(A);
    assert!(locks.transaction_footprint(A).is_none());
}

/// Found by the differential test against PostgreSQL: another transaction's
/// uncommitted row is invisible to UPDATE, DELETE and SELECT … FOR …, which
/// skip it without waiting; only a colliding INSERT waits for it.
#[test]
fn uncommitted_inserts_block_only_colliding_inserts() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("BEGIN"));
    locks.apply(
        A,
        &pg("INSERT INTO accounts (name, balance) VALUES ('dave', 1)"),
    );
    for sql in [
        "SELECT * FROM accounts WHERE name='dave' FOR UPDATE",
        "SELECT * FROM accounts WHERE name='dave' FOR KEY SHARE",
        "DELETE FROM accounts WHERE name='dave'",
        "SELECT * FROM accounts FOR UPDATE",
    ] {
        assert_eq!(locks.predict(B, &pg(sql)), Prediction::Proceeds, "{sql}");
    }
    // An UPDATE's new values may collide with the new row's on a unique column.
    assert_eq!(
        locks.predict(B, &pg("UPDATE accounts SET balance = 2 WHERE name='dave'")),
        Prediction::Unknown
    );
    assert_eq!(
        locks.predict(B, &pg("INSERT INTO accounts (name) VALUES ('dave')")),
        Prediction::Unknown
    );
    // Rows the transaction then locks itself are visible ones again.
    locks.apply(
        A,
        &pg("SELECT * FROM accounts WHERE name='alice' FOR UPDATE"),
    );
    assert_eq!(
        locks.predict(B, &pg("UPDATE accounts SET balance = 2 WHERE name='alice'")),
        Prediction::Blocks(vec![A])
    );
}

/// Found by the differential test against PostgreSQL: `FOR KEY SHARE SKIP
/// LOCKED` on a row another transaction updated (a non-key update does not
/// conflict with it) and then locked again waits for that transaction: the
/// lock on the row's new version is waited for whatever the wait policy.
#[test]
fn key_share_skip_locked_on_an_updated_row_is_unknown() {
    let mut locks = LockTable::new();
    locks.apply(A, &pg("BEGIN"));
    locks.apply(A, &pg("UPDATE accounts SET balance = 1 WHERE name='carol'"));
    locks.apply(
        A,
        &pg("SELECT * FROM accounts WHERE name='carol' FOR UPDATE"),
    );
    let key_share = "SELECT * FROM accounts WHERE name='carol' FOR KEY SHARE SKIP LOCKED";
    assert_eq!(locks.predict(B, &pg(key_share)), Prediction::Unknown);
    // Stronger modes conflict with the update itself and skip the row.
    let update = "SELECT * FROM accounts WHERE name='carol' FOR UPDATE SKIP LOCKED";
    assert_eq!(locks.predict(B, &pg(update)), Prediction::Proceeds);
    // Rows only locked, never updated, are simply skipped.
    locks.apply(A, &pg(LOCK_ALICE));
    let alice = "SELECT * FROM accounts WHERE name='alice' FOR KEY SHARE SKIP LOCKED";
    assert_eq!(locks.predict(B, &pg(alice)), Prediction::Proceeds);
}
