//! When a statement held back or undone while waiting for a lock may have
//! held something others wait for, and who might wait for it.

use frontrun_sql::model::Model;
use frontrun_sql::{analyse, Dialect, Footprint};

fn fp(sql: &str) -> Footprint {
    analyse(sql, &[], Dialect::PostgreSql)
}

fn model() -> Model {
    let mut m = Model::new("pg:test");
    m.declare_key("t", "id");
    m.declare_unique("t", vec!["id".into(), "u".into()]);
    m
}

#[test]
fn only_statements_that_may_lock_or_write_before_waiting_hold_something() {
    let m = model();
    // One row by its key: it waits before it locks anything.
    assert!(!m.may_wait_holding(&fp("DELETE FROM t WHERE id = 1")));
    assert!(!m.may_wait_holding(&fp("SELECT v FROM t WHERE id = 1 FOR UPDATE")));
    // Several rows: some may be locked before the wait.
    assert!(m.may_wait_holding(&fp("DELETE FROM t WHERE v > 0")));
    assert!(m.may_wait_holding(&fp("SELECT v FROM t WHERE id IN (1, 2) FOR UPDATE")));
    // A new row version waits in its unique check.
    assert!(m.may_wait_holding(&fp("UPDATE t SET v = 1 WHERE id = 1")));
    assert!(m.may_wait_holding(&fp("INSERT INTO t (id, u, v) VALUES (3, 30, 0)")));
    // Plain reads hold nothing.
    assert!(!m.may_wait_holding(&fp("SELECT v FROM t WHERE v > 0")));
}

#[test]
fn a_later_statement_may_wait_only_on_shared_rows_or_unique_values() {
    let mut m = model();
    let undone = fp("DELETE FROM t WHERE v >= 0");
    // Any row of the table may be among those the DELETE locked.
    assert!(m.may_wait_for_undone(2, &undone, &fp("UPDATE t SET v = 1 WHERE id = 1")));
    // Plain reads never wait.
    assert!(!m.may_wait_for_undone(2, &undone, &fp("SELECT v FROM t WHERE id = 1")));
    // A row another open transaction holds FOR UPDATE cannot be locked by
    // the waiting DELETE.
    m.apply(1, &fp("SELECT v FROM t WHERE id = 1 FOR UPDATE"));
    assert!(!m.may_wait_for_undone(2, &undone, &fp("UPDATE t SET v = 1 WHERE id = 1")));
    assert!(m.may_wait_for_undone(2, &undone, &fp("UPDATE t SET v = 1 WHERE id = 3")));

    let update = fp("UPDATE t SET u = 30 WHERE id = 2");
    // Another row, and no unique column written by both.
    assert!(!m.may_wait_for_undone(2, &update, &fp("UPDATE t SET v = 1 WHERE id = 3")));
    // Another row, but an INSERT writes every unique column.
    assert!(m.may_wait_for_undone(
        2,
        &update,
        &fp("INSERT INTO t (id, u, v) VALUES (3, 10, 5)")
    ));
    // The same unique column.
    assert!(m.may_wait_for_undone(2, &update, &fp("UPDATE t SET u = 40 WHERE id = 3")));
}
