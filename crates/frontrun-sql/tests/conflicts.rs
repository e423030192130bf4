//! Conflict pairs, and agreement between `conflicts` and the resource model.

use frontrun_sql::resources::{database_resource, fnv1a, resources_conflict, table_resource};
use frontrun_sql::{analyse, Dialect, Footprint, KeyColumns, Param, ResourceMode};

fn pg(sql: &str) -> Footprint {
    analyse(sql, &[], Dialect::PostgreSql)
}

const SELECT_ALICE: &str = "SELECT balance FROM accounts WHERE name='alice'";
const SELECT_BOB: &str = "SELECT balance FROM accounts WHERE name='bob'";
const UPDATE_ALICE: &str = "UPDATE accounts SET balance = 1100 WHERE name='alice'";
const UPDATE_BOB: &str = "UPDATE accounts SET balance = 1200 WHERE name='bob'";
const LOCK_ALICE: &str = "SELECT * FROM accounts WHERE name='alice' FOR UPDATE";
const LOCK_BOB: &str = "SELECT * FROM accounts WHERE name='bob' FOR UPDATE";
const SHARE_ALICE: &str = "SELECT * FROM accounts WHERE name='alice' FOR SHARE";
const KEY_SHARE_ALICE: &str = "SELECT * FROM accounts WHERE name='alice' FOR KEY SHARE";
const NO_KEY_ALICE: &str = "SELECT * FROM accounts WHERE name='alice' FOR NO KEY UPDATE";
const LOCK_BOTH: &str =
    "SELECT * FROM accounts WHERE name = ANY(ARRAY['alice','bob']) ORDER BY name FOR UPDATE";
const COUNT_READ: &str = "SELECT counter FROM counts";
const COUNT_INSERT: &str = "INSERT INTO counts (counter) VALUES (1)";
const BEGIN: &str = "BEGIN";
const COMMIT: &str = "COMMIT";
const DDL: &str = "TRUNCATE accounts";
const GARBAGE: &str = "SELEKT everything";

/// Every pair with the expected verdict; checked both ways round.
const PAIRS: &[(&str, &str, bool)] = &[
    (SELECT_ALICE, SELECT_BOB, false),
    (SELECT_ALICE, SELECT_ALICE, false),
    (SELECT_ALICE, UPDATE_ALICE, true),
    (SELECT_ALICE, UPDATE_BOB, false),
    (UPDATE_ALICE, UPDATE_BOB, false),
    (UPDATE_ALICE, UPDATE_ALICE, true),
    (LOCK_ALICE, LOCK_ALICE, true),
    (LOCK_ALICE, LOCK_BOB, false),
    (LOCK_ALICE, SELECT_ALICE, false),
    (LOCK_ALICE, UPDATE_ALICE, true),
    (LOCK_BOTH, LOCK_BOB, true),
    (LOCK_BOTH, LOCK_ALICE, true),
    (SHARE_ALICE, SHARE_ALICE, false),
    (SHARE_ALICE, LOCK_ALICE, true),
    (SHARE_ALICE, NO_KEY_ALICE, true),
    (KEY_SHARE_ALICE, NO_KEY_ALICE, false),
    (KEY_SHARE_ALICE, LOCK_ALICE, true),
    (NO_KEY_ALICE, NO_KEY_ALICE, true),
    (COUNT_READ, COUNT_INSERT, true),
    (COUNT_INSERT, COUNT_INSERT, true),
    (COUNT_READ, SELECT_ALICE, false),
    (COUNT_INSERT, UPDATE_ALICE, false),
    (BEGIN, UPDATE_ALICE, false),
    (BEGIN, GARBAGE, false),
    (COMMIT, SELECT_BOB, true),
    (DDL, SELECT_BOB, true),
    (DDL, LOCK_BOB, true),
    (DDL, COUNT_READ, false),
    (GARBAGE, COUNT_READ, true),
    (GARBAGE, SELECT_ALICE, true),
];

#[test]
fn conflict_pairs() {
    for (a, b, expected) in PAIRS {
        let (fa, fb) = (pg(a), pg(b));
        assert_eq!(fa.conflicts(&fb), *expected, "{a}  vs  {b}");
        assert_eq!(fb.conflicts(&fa), *expected, "{b}  vs  {a}");
    }
}

#[test]
fn inserted_rows_meet_only_matching_pinned_reads() {
    let ins = analyse(
        "INSERT INTO accounts (name, balance) VALUES (%s, %s)",
        &[Param::Text("carol".into()), Param::Int(0)],
        Dialect::PostgreSql,
    );
    assert!(
        !ins.conflicts(&pg(SELECT_ALICE)),
        "carol's new row is not alice"
    );
    assert!(ins.conflicts(&pg("SELECT * FROM accounts WHERE name = 'carol'")));
    assert!(
        ins.conflicts(&pg("SELECT sum(balance) FROM accounts")),
        "aggregates see new rows"
    );
    assert!(
        ins.conflicts(&pg("SELECT * FROM accounts WHERE id = 5")),
        "other columns cannot rule it out"
    );
}

#[test]
fn renaming_a_row_conflicts_with_readers_of_the_new_name() {
    let rename = pg("UPDATE accounts SET name = 'alice' WHERE name = 'bob'");
    assert!(rename.conflicts(&pg(SELECT_ALICE)));
}

#[test]
fn explicit_table_locks_follow_the_conflict_table() {
    let share = pg("LOCK TABLE accounts IN SHARE MODE");
    assert!(share.conflicts(&pg(UPDATE_ALICE)), "SHARE blocks writers");
    assert!(!share.conflicts(&pg(SELECT_ALICE)), "but not readers");
    assert!(!share.conflicts(&pg("LOCK TABLE accounts IN SHARE MODE")));
    assert!(pg("LOCK TABLE accounts").conflicts(&pg(SELECT_ALICE)));
    assert!(!pg("LOCK TABLE accounts").conflicts(&pg(COUNT_READ)));
}

#[test]
fn schemas_are_merged_conservatively() {
    assert!(
        pg("UPDATE public.accounts SET balance = 1 WHERE name='alice'")
            .conflicts(&pg(SELECT_ALICE))
    );
}

#[test]
fn resources_agree_with_conflicts_on_every_pair() {
    let mut keys = KeyColumns::new();
    for (a, b, expected) in PAIRS {
        let (ra, rb) = (pg(a).resources(&mut keys), pg(b).resources(&mut keys));
        assert_eq!(
            resources_conflict(&ra, &rb),
            *expected,
            "{a}  vs  {b}: {ra:?} {rb:?}"
        );
    }
}

#[test]
fn resources_are_keyed_by_the_learned_column() {
    let mut keys = KeyColumns::new();
    let lock = pg(LOCK_ALICE).resources(&mut keys);
    assert_eq!(keys.get("accounts"), Some("name"));
    let data = lock
        .iter()
        .find(|r| r.id == table_resource("accounts"))
        .unwrap();
    assert_eq!(data.key, Some(fnv1a(b"name\0s:alice")));
    assert_eq!(data.mode, ResourceMode::Read);
    assert!(lock
        .iter()
        .any(|r| r.id == database_resource() && r.mode == ResourceMode::Read));
    // A statement pinned on another column cannot use a key: whole table.
    let by_id = pg("UPDATE accounts SET balance = 0 WHERE id = 3").resources(&mut keys);
    assert!(by_id
        .iter()
        .filter(|r| r.id == table_resource("accounts"))
        .all(|r| r.key.is_none()));
    assert!(resources_conflict(&by_id, &lock));
    assert!(pg(BEGIN).resources(&mut keys).is_empty());
    let garbage = pg(GARBAGE).resources(&mut keys);
    assert!(garbage
        .iter()
        .any(|r| r.id == database_resource() && r.mode == ResourceMode::Write));
}

#[test]
fn resource_ids_are_stable_constants() {
    // FNV-1a 64 of "table:accounts": must never change between processes.
    assert_eq!(table_resource("accounts"), fnv1a(b"table:accounts"));
    assert_eq!(
        table_resource("public.accounts"),
        table_resource("accounts")
    );
    // Computed independently (Python) from the FNV-1a definition.
    assert_eq!(table_resource("accounts"), 0x4899_0e32_06d3_e17b);
}

#[test]
fn resources_never_miss_a_conflict_on_any_pair() {
    let mut statements: Vec<&str> = PAIRS.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    statements.extend([
        "UPDATE accounts SET balance = 0 WHERE id = 3",
        "SELECT * FROM accounts WHERE id = 3 AND name = 'bob' FOR SHARE",
        "DELETE FROM accounts WHERE name IN ('alice', 'dave')",
        "INSERT INTO accounts (name, balance) VALUES ('erin', 1)",
        "UPDATE accounts SET name = 'alice' WHERE name = 'bob'",
        "LOCK TABLE accounts IN SHARE MODE",
        "LOCK TABLE counts IN ROW EXCLUSIVE MODE",
        "SELECT * FROM accounts a JOIN counts c ON true WHERE a.name = 'bob'",
        "ROLLBACK",
        "SAVEPOINT s",
    ]);
    let mut keys = KeyColumns::new();
    for a in &statements {
        for b in &statements {
            let (fa, fb) = (pg(a), pg(b));
            if fa.conflicts(&fb) {
                let (ra, rb) = (fa.resources(&mut keys), fb.resources(&mut keys));
                assert!(resources_conflict(&ra, &rb), "resources miss {a}  vs  {b}");
            }
        }
    }
}

#[test]
fn null_pinned_writes_stay_visible_as_resources() {
    let mut keys = KeyColumns::new();
    keys.declare("accounts", "name");
    let ins = analyse(
        "INSERT INTO accounts (name, balance) VALUES (%s, 0)",
        &[Param::Null],
        Dialect::PostgreSql,
    );
    let all = pg("SELECT sum(balance) FROM accounts");
    assert!(ins.conflicts(&all));
    assert!(resources_conflict(
        &ins.resources(&mut keys),
        &all.resources(&mut keys)
    ));
}
