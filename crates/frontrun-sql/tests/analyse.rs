//! Footprints of every statement form the workloads use.

use frontrun_sql::{
    analyse, analyse_uncached, analyse_with, AccessMode, Dialect, Footprint, IsolationLevel, Param,
    Params, RowLockMode, Rows, StatementKind, TableAccess, TableLockMode, TxnControl, Value,
};

const PG: Dialect = Dialect::PostgreSql;

fn pg(sql: &str) -> Footprint {
    analyse(sql, &[], PG)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn keys(pairs: &[(&str, Value)]) -> Rows {
    Rows::Keys(
        pairs
            .iter()
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect(),
    )
}

fn only(fp: &Footprint) -> &TableAccess {
    assert_eq!(fp.accesses.len(), 1, "expected one access: {fp:#?}");
    &fp.accesses[0]
}

fn access<'a>(fp: &'a Footprint, table: &str, mode: AccessMode) -> &'a TableAccess {
    fp.accesses
        .iter()
        .find(|a| a.table == table && a.mode == mode)
        .unwrap_or_else(|| panic!("no {mode:?} of {table}: {fp:#?}"))
}

#[test]
fn seed_select_pins_alice() {
    let fp = pg("SELECT balance FROM accounts WHERE name='alice'");
    assert_eq!(fp.kind, StatementKind::Select);
    let a = only(&fp);
    assert_eq!(
        (a.table.as_str(), a.mode, a.lock),
        ("accounts", AccessMode::Read, None)
    );
    assert_eq!(a.rows, keys(&[("name", text("alice"))]));
    assert!(!fp.unparsed && !fp.global);
}

#[test]
fn seed_update_with_pyformat_param_writes_and_locks_alice() {
    let fp = analyse(
        "UPDATE accounts SET balance=%s WHERE name='alice'",
        &[Param::Int(1100)],
        PG,
    );
    assert_eq!(fp.kind, StatementKind::Update);
    let a = only(&fp);
    assert_eq!(a.mode, AccessMode::Write);
    assert_eq!(a.rows, keys(&[("name", text("alice"))]));
    assert_eq!(a.lock.map(|l| l.mode), Some(RowLockMode::Update));
    assert_eq!(fp.describe(), "write accounts[name='alice'] (row lock)");
}

#[test]
fn seed_select_for_update() {
    let fp = pg("SELECT * FROM accounts WHERE name='alice' FOR UPDATE");
    let a = only(&fp);
    assert_eq!(a.mode, AccessMode::Read);
    assert_eq!(a.lock.map(|l| l.mode), Some(RowLockMode::Update));
    assert_eq!(fp.describe(), "read accounts[name='alice'] (FOR UPDATE)");
}

#[test]
fn seed_counter_select_and_insert() {
    let read = pg("SELECT counter FROM counts");
    assert_eq!(only(&read).rows, Rows::All);
    assert_eq!(read.describe(), "read counts[*]");
    let locked = pg("SELECT counter FROM counts FOR UPDATE");
    assert_eq!(
        only(&locked).lock.map(|l| l.mode),
        Some(RowLockMode::Update)
    );
    let ins = analyse(
        "INSERT INTO counts (counter) VALUES (%s)",
        &[Param::Int(1)],
        PG,
    );
    assert_eq!(ins.kind, StatementKind::Insert);
    let a = only(&ins);
    assert_eq!(
        (a.mode, &a.rows),
        (AccessMode::Write, &keys(&[("counter", Value::Int(1))]))
    );
    // The seed's `INSERT INTO counts ($1)` has no column list: all rows.
    let bare = analyse("INSERT INTO counts VALUES ($1)", &[Param::Int(1)], PG);
    assert_eq!(only(&bare).rows, Rows::All);
}

#[test]
fn seed_any_array_for_update_pins_both_names() {
    let fp = pg(
        "SELECT * FROM accounts WHERE name = ANY(ARRAY['alice','bob']) ORDER BY name FOR UPDATE",
    );
    let a = only(&fp);
    assert_eq!(
        a.rows,
        keys(&[("name", text("alice")), ("name", text("bob"))])
    );
    assert_eq!(a.lock.map(|l| l.mode), Some(RowLockMode::Update));
    assert_eq!(
        fp.describe(),
        "read accounts[name in ('alice','bob')] (FOR UPDATE)"
    );
}

#[test]
fn any_with_a_list_parameter() {
    let fp = analyse(
        "SELECT * FROM accounts WHERE name = ANY(%s)",
        &[Param::List(vec![
            Param::Text("alice".into()),
            Param::Text("carol".into()),
        ])],
        PG,
    );
    assert_eq!(
        only(&fp).rows,
        keys(&[("name", text("alice")), ("name", text("carol"))])
    );
    let scalar = analyse(
        "SELECT * FROM accounts WHERE name = ANY(%s)",
        &[Param::Text("x".into())],
        PG,
    );
    assert_eq!(
        only(&scalar).rows,
        Rows::All,
        "a non-list parameter cannot pin ANY"
    );
}

#[test]
fn transaction_control() {
    assert_eq!(pg("BEGIN").txn, vec![TxnControl::Begin(None)]);
    assert_eq!(pg("START TRANSACTION").kind, StatementKind::Begin);
    assert_eq!(pg("COMMIT").txn, vec![TxnControl::Commit]);
    assert_eq!(pg("ROLLBACK").txn, vec![TxnControl::Rollback]);
    assert_eq!(pg("ROLLBACK").kind, StatementKind::Rollback);
    assert_eq!(
        pg("SAVEPOINT s1").txn,
        vec![TxnControl::Savepoint("s1".into())]
    );
    assert_eq!(
        pg("ROLLBACK TO SAVEPOINT s1").txn,
        vec![TxnControl::RollbackTo("s1".into())]
    );
    assert_eq!(
        pg("RELEASE SAVEPOINT s1").txn,
        vec![TxnControl::Release("s1".into())]
    );
    assert_eq!(
        pg("BEGIN ISOLATION LEVEL SERIALIZABLE").txn,
        vec![TxnControl::Begin(Some(IsolationLevel::Serializable))]
    );
    let set = pg("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    assert_eq!(set.kind, StatementKind::SetIsolation);
    assert_eq!(
        set.txn,
        vec![TxnControl::SetIsolation {
            level: IsolationLevel::RepeatableRead,
            session: false
        }]
    );
    let session = pg("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED");
    assert_eq!(
        session.txn,
        vec![TxnControl::SetIsolation {
            level: IsolationLevel::ReadCommitted,
            session: true
        }]
    );
    assert!(pg("BEGIN").is_inert() && !pg("COMMIT").is_inert());
}

#[test]
fn ddl_takes_access_exclusive_locks() {
    let ct = pg("CREATE TABLE counts (id serial PRIMARY KEY, counter int)");
    assert_eq!(ct.kind, StatementKind::Ddl);
    assert_eq!(ct.table_locks[0].table, "counts");
    assert_eq!(ct.table_locks[0].mode, TableLockMode::AccessExclusive);
    let tr = pg("TRUNCATE accounts, counts");
    let tables: Vec<_> = tr.table_locks.iter().map(|l| l.table.as_str()).collect();
    assert_eq!(tables, ["accounts", "counts"]);
    let dr = pg("DROP TABLE IF EXISTS accounts");
    assert_eq!(dr.table_locks[0].mode, TableLockMode::AccessExclusive);
    assert_eq!(
        pg("ALTER TABLE accounts ADD COLUMN x int")
            .table_locks
            .len(),
        1
    );
    assert_eq!(
        pg("CREATE INDEX i ON accounts (name)").table_locks[0].mode,
        TableLockMode::Share
    );
    assert!(
        pg("CREATE SCHEMA s").global,
        "DDL on no known table is unbounded"
    );
}

#[test]
fn lock_table_is_parsed_by_hand() {
    let fp = pg("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE NOWAIT");
    assert_eq!(fp.kind, StatementKind::Lock);
    assert_eq!(fp.table_locks.len(), 1);
    let l = &fp.table_locks[0];
    assert_eq!(
        (l.table.as_str(), l.mode, l.nowait),
        ("accounts", TableLockMode::ShareRowExclusive, true)
    );
    let def = pg("lock public.accounts, \"Counts\"");
    let tables: Vec<_> = def
        .table_locks
        .iter()
        .map(|l| (l.table.as_str(), l.mode))
        .collect();
    assert_eq!(
        tables,
        [
            ("public.accounts", TableLockMode::AccessExclusive),
            ("Counts", TableLockMode::AccessExclusive)
        ]
    );
    assert!(pg("LOCK TABLE accounts IN SIDEWAYS MODE").unparsed);
}

#[test]
fn weak_row_lock_strengths_and_flags() {
    let nk = pg("SELECT * FROM accounts WHERE name='alice' FOR NO KEY UPDATE NOWAIT");
    let l = only(&nk).lock.unwrap();
    assert_eq!(
        (l.mode, l.nowait, l.skip_locked),
        (RowLockMode::NoKeyUpdate, true, false)
    );
    let ks = pg("SELECT * FROM accounts WHERE name='alice' FOR KEY SHARE SKIP LOCKED");
    let l = only(&ks).lock.unwrap();
    assert_eq!(
        (l.mode, l.nowait, l.skip_locked),
        (RowLockMode::KeyShare, false, true)
    );
    assert_eq!(
        only(&pg("SELECT * FROM accounts FOR SHARE"))
            .lock
            .unwrap()
            .mode,
        RowLockMode::Share
    );
}

#[test]
fn for_update_of_locks_only_the_named_relation() {
    let fp = pg("SELECT * FROM accounts a JOIN counts c ON c.id = a.id WHERE a.name = 'alice' FOR UPDATE OF a");
    let a = access(&fp, "accounts", AccessMode::Read);
    assert_eq!(a.lock.map(|l| l.mode), Some(RowLockMode::Update));
    assert_eq!(a.rows, keys(&[("name", text("alice"))]));
    let c = access(&fp, "counts", AccessMode::Read);
    assert_eq!((c.lock, &c.rows), (None, &Rows::All));
}

#[test]
fn names_fold_to_lower_case_unless_quoted() {
    let fp = pg("SELECT * FROM Public.Accounts WHERE NAME = 'x'");
    assert_eq!(only(&fp).table, "public.accounts");
    assert_eq!(only(&fp).rows, keys(&[("name", text("x"))]));
    assert_eq!(only(&pg("SELECT * FROM \"Accounts\"")).table, "Accounts");
    let lite = analyse("SELECT * FROM \"Accounts\"", &[], Dialect::Sqlite);
    assert_eq!(
        only(&lite).table,
        "accounts",
        "SQLite names are case-insensitive"
    );
}

#[test]
fn in_lists_with_literals_and_params() {
    let fp = analyse(
        "SELECT * FROM accounts WHERE name IN (%s, %s, 'dave')",
        &[Param::Text("alice".into()), Param::Text("bob".into())],
        PG,
    );
    assert_eq!(
        only(&fp).rows,
        keys(&[
            ("name", text("alice")),
            ("name", text("bob")),
            ("name", text("dave"))
        ])
    );
    let unknown = analyse(
        "SELECT * FROM accounts WHERE name IN (%s, 'x')",
        &[Param::Other],
        PG,
    );
    assert_eq!(
        only(&unknown).rows,
        Rows::All,
        "an unknown value unpins the column"
    );
    let negated = pg("SELECT * FROM accounts WHERE name NOT IN ('a')");
    assert_eq!(only(&negated).rows, Rows::All);
}

#[test]
fn conjunctions_pin_several_columns_and_disjunctions_pin_none() {
    let fp = pg("SELECT * FROM t WHERE a = 1 AND (b = 'x') AND c > 3 AND 2 = d");
    assert_eq!(
        only(&fp).rows,
        keys(&[("a", Value::Int(1)), ("b", text("x")), ("d", Value::Int(2))])
    );
    assert_eq!(
        only(&pg("SELECT * FROM t WHERE a = 1 OR a = 2")).rows,
        Rows::All
    );
    assert_eq!(
        only(&pg("SELECT * FROM t WHERE a BETWEEN 1 AND 3")).rows,
        Rows::All
    );
    assert_eq!(only(&pg("SELECT * FROM t WHERE a = b")).rows, Rows::All);
    let cast = pg("SELECT * FROM t WHERE a = '5'::int AND b = -2");
    assert_eq!(
        only(&cast).rows,
        keys(&[("a", text("5")), ("b", Value::Int(-2))])
    );
}

#[test]
fn named_pyformat_parameters() {
    let named = vec![
        ("who".to_string(), Param::Text("bob".into())),
        ("amount".to_string(), Param::Int(5)),
    ];
    let fp = analyse_with(
        "UPDATE accounts SET balance = balance + %(amount)s WHERE name = %(who)s",
        Params::named(&named),
        PG,
    );
    assert_eq!(only(&fp).rows, keys(&[("name", text("bob"))]));
    let missing = analyse_with(
        "SELECT * FROM accounts WHERE name = %(nobody)s",
        Params::named(&named),
        PG,
    );
    assert_eq!(only(&missing).rows, Rows::All);
}

#[test]
fn pyformat_respects_quotes_and_percent_escapes() {
    let fp = analyse(
        "SELECT * FROM accounts WHERE note LIKE '50%%' AND tag = '%s' AND name = %s",
        &[Param::Text("alice".into())],
        PG,
    );
    assert!(!fp.unparsed, "{:?}", fp.parse_error);
    assert_eq!(
        only(&fp).rows,
        keys(&[("tag", text("%s")), ("name", text("alice"))]),
        "the quoted %s is a literal, the bare one is parameter 0"
    );
    let escaped = analyse("SELECT * FROM t WHERE code = 'a%%b'", &[], PG);
    assert_eq!(
        only(&escaped).rows,
        Rows::All,
        "'a%%b' is 'a%b' or 'a%%b' depending on the driver"
    );
    let modulo = analyse(
        "SELECT * FROM t WHERE a %% 2 = 0 AND b = %s",
        &[Param::Int(3)],
        PG,
    );
    assert!(!modulo.unparsed, "{:?}", modulo.parse_error);
    assert_eq!(only(&modulo).rows, keys(&[("b", Value::Int(3))]));
}

#[test]
fn question_marks_and_dollar_placeholders() {
    let p = [Param::Text("alice".into()), Param::Int(7)];
    for d in [Dialect::Sqlite, Dialect::MySql] {
        let fp = analyse("SELECT * FROM accounts WHERE name = ? AND id = ?", &p, d);
        assert!(!fp.unparsed, "{d:?}: {:?}", fp.parse_error);
        assert_eq!(
            only(&fp).rows,
            keys(&[("name", text("alice")), ("id", Value::Int(7))]),
            "{d:?}"
        );
    }
    let fp = analyse("SELECT * FROM accounts WHERE id = $2 AND name = $1", &p, PG);
    assert_eq!(
        only(&fp).rows,
        keys(&[("id", Value::Int(7)), ("name", text("alice"))])
    );
    let mysql = analyse(
        "SELECT * FROM accounts WHERE name = %s",
        &[Param::Text("Alice".into())],
        Dialect::MySql,
    );
    assert_eq!(
        only(&mysql).rows,
        keys(&[("name", text("alice"))]),
        "MySQL compares text case-insensitively"
    );
}

#[test]
fn unparseable_sql_is_global() {
    let fp = pg("SELEKT * FROM accounts");
    assert!(fp.unparsed && fp.global);
    assert!(fp.parse_error.as_deref().is_some_and(|m| !m.is_empty()));
    assert!(fp.describe().starts_with("unparsed SQL"));
}

#[test]
fn multiple_statements_give_the_union() {
    let fp = analyse(
        "BEGIN; UPDATE accounts SET balance = %s WHERE name = 'alice'; UPDATE accounts SET balance = %s WHERE name = %s; COMMIT",
        &[Param::Int(1), Param::Int(2), Param::Text("bob".into())],
        PG,
    );
    assert_eq!(
        fp.kinds,
        [
            StatementKind::Begin,
            StatementKind::Update,
            StatementKind::Update,
            StatementKind::Commit
        ]
    );
    assert_eq!(fp.kind, StatementKind::Begin);
    assert_eq!(fp.txn, [TxnControl::Begin(None), TxnControl::Commit]);
    let rows: Vec<_> = fp.accesses.iter().map(|a| a.rows.clone()).collect();
    assert_eq!(
        rows,
        [
            keys(&[("name", text("alice"))]),
            keys(&[("name", text("bob"))])
        ]
    );
    let partly = pg("SELECT 1 FROM a; SELEKT; SELECT 2 FROM b");
    assert!(partly.unparsed);
    assert_eq!(
        partly.accesses.len(),
        2,
        "the parseable statements still count"
    );
}

#[test]
fn joins_read_every_table() {
    let fp = pg(
        "SELECT a.balance FROM accounts a JOIN owners o ON o.id = a.owner_id LEFT JOIN banks b USING (bank_id) WHERE a.name = 'alice' AND o.city = $1",
    );
    assert_eq!(fp.accesses.len(), 3);
    assert_eq!(
        access(&fp, "accounts", AccessMode::Read).rows,
        keys(&[("name", text("alice"))])
    );
    assert_eq!(
        access(&fp, "owners", AccessMode::Read).rows,
        Rows::All,
        "$1 has no value"
    );
    assert_eq!(access(&fp, "banks", AccessMode::Read).rows, Rows::All);
    let ambiguous = pg("SELECT * FROM a, b WHERE x = 1");
    assert!(ambiguous.accesses.iter().all(|a| a.rows == Rows::All));
}

#[test]
fn subqueries_are_read() {
    let fp = pg("SELECT * FROM accounts WHERE name IN (SELECT name FROM vips WHERE level = 3) AND EXISTS (SELECT 1 FROM audit) AND balance > (SELECT avg(balance) FROM accounts)");
    assert_eq!(
        access(&fp, "vips", AccessMode::Read).rows,
        Rows::All,
        "`level` may be a column of the outer accounts"
    );
    let qualified =
        pg("SELECT * FROM accounts WHERE name IN (SELECT v.name FROM vips v WHERE v.level = 3)");
    assert_eq!(
        access(&qualified, "vips", AccessMode::Read).rows,
        keys(&[("level", Value::Int(3))])
    );
    access(&fp, "audit", AccessMode::Read);
    assert!(fp.accesses.iter().filter(|a| a.table == "accounts").count() >= 1);
    let derived = pg("SELECT * FROM (SELECT * FROM accounts WHERE name='bob') s");
    assert_eq!(only(&derived).rows, keys(&[("name", text("bob"))]));
    let projected = pg("SELECT (SELECT count(*) FROM counts), coalesce((SELECT 1 FROM x), 0)");
    assert_eq!(projected.accesses.len(), 2);
}

#[test]
fn ctes_including_data_modifying_ones() {
    let fp = pg("WITH moved AS (DELETE FROM queue WHERE id = 4 RETURNING *) INSERT INTO done SELECT * FROM moved");
    let q = access(&fp, "queue", AccessMode::Write);
    assert_eq!(q.rows, keys(&[("id", Value::Int(4))]));
    assert_eq!(access(&fp, "done", AccessMode::Write).rows, Rows::All);
    assert!(
        !fp.accesses.iter().any(|a| a.table == "moved"),
        "a CTE is not a table"
    );
    let upd = pg("WITH v AS (SELECT name FROM vips) UPDATE accounts SET balance = 0 WHERE name IN (SELECT name FROM v)");
    access(&upd, "vips", AccessMode::Read);
    assert_eq!(access(&upd, "accounts", AccessMode::Write).rows, Rows::All);
}

#[test]
fn insert_select_update_from_and_returning() {
    let ins = pg("INSERT INTO archive (name, balance) SELECT name, balance FROM accounts WHERE name = 'alice'");
    assert_eq!(access(&ins, "archive", AccessMode::Write).rows, Rows::All);
    assert_eq!(
        access(&ins, "accounts", AccessMode::Read).rows,
        keys(&[("name", text("alice"))])
    );
    let upd = pg("UPDATE accounts a SET balance = t.amount FROM transfers t WHERE a.name = 'bob' AND t.id = 9 RETURNING (SELECT 1 FROM log)");
    assert_eq!(
        access(&upd, "accounts", AccessMode::Write).rows,
        keys(&[("name", text("bob"))])
    );
    assert_eq!(
        access(&upd, "transfers", AccessMode::Read).rows,
        keys(&[("id", Value::Int(9))])
    );
    access(&upd, "log", AccessMode::Read);
    let del = pg("DELETE FROM accounts WHERE name = 'carol' RETURNING balance");
    assert_eq!(del.kind, StatementKind::Delete);
    let d = only(&del);
    assert_eq!(
        (d.mode, &d.rows),
        (AccessMode::Write, &keys(&[("name", text("carol"))]))
    );
    assert_eq!(d.lock.map(|l| l.mode), Some(RowLockMode::Update));
    let using = pg("DELETE FROM accounts a USING banned b WHERE a.name = b.name");
    assert_eq!(
        access(&using, "accounts", AccessMode::Write).rows,
        Rows::All
    );
    access(&using, "banned", AccessMode::Read);
}

#[test]
fn updates_of_a_pinned_column_include_the_new_value() {
    let fp = pg("UPDATE accounts SET name = 'carol' WHERE name = 'bob'");
    assert_eq!(
        only(&fp).rows,
        keys(&[("name", text("bob")), ("name", text("carol"))])
    );
    let computed = pg("UPDATE accounts SET name = upper(name) WHERE name = 'bob'");
    assert_eq!(only(&computed).rows, Rows::All);
}

#[test]
fn on_conflict_do_update_writes_the_existing_row() {
    let fp = analyse(
        "INSERT INTO accounts (name, balance) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET balance = EXCLUDED.balance RETURNING balance",
        &[Param::Text("alice".into()), Param::Int(5)],
        PG,
    );
    let a = only(&fp);
    assert_eq!(a.mode, AccessMode::Write);
    assert_eq!(
        a.rows,
        keys(&[("name", text("alice"))]),
        "only the conflict key is known"
    );
    assert_eq!(a.lock.map(|l| l.mode), Some(RowLockMode::Update));
    let plain = analyse(
        "INSERT INTO accounts (name, balance) VALUES (%s, %s), ('bob', 1)",
        &[Param::Text("alice".into()), Param::Int(5)],
        PG,
    );
    assert_eq!(
        only(&plain).rows,
        keys(&[
            ("name", text("alice")),
            ("name", text("bob")),
            ("balance", Value::Int(5)),
            ("balance", Value::Int(1))
        ])
    );
    let no_target = pg("INSERT INTO accounts (name) VALUES ('x') ON CONFLICT ON CONSTRAINT k DO UPDATE SET name = 'y'");
    assert_eq!(only(&no_target).rows, Rows::All);
}

#[test]
fn set_show_and_explain_are_inert_but_unknown_statements_are_global() {
    assert!(pg("SET search_path TO public").is_inert());
    assert!(pg("SHOW transaction_isolation").is_inert());
    assert!(pg("EXPLAIN SELECT * FROM accounts").is_inert());
    let analyze = pg("EXPLAIN ANALYZE UPDATE accounts SET balance = 1 WHERE name = 'a'");
    assert_eq!(
        only(&analyze).mode,
        AccessMode::Write,
        "EXPLAIN ANALYZE runs the statement"
    );
    assert!(pg("CALL transfer('alice', 'bob', 10)").global);
    assert!(pg("SELECT * FROM generate_series(1, 3)").global);
    assert!(pg("SELECT * INTO copy FROM accounts").global);
}

#[test]
fn cached_and_uncached_agree_across_parameters() {
    let sql = "SELECT * FROM accounts WHERE name = %s FOR UPDATE";
    for who in ["alice", "bob", "alice"] {
        let p = [Param::Text(who.into())];
        let cached = analyse(sql, &p, PG);
        assert_eq!(cached, analyse_uncached(sql, Params::positional(&p), PG));
        assert_eq!(only(&cached).rows, keys(&[("name", text(who))]));
    }
}

#[test]
fn descriptions() {
    assert_eq!(
        pg("SELECT balance FROM accounts WHERE name='alice'").describe(),
        "read accounts[name='alice']"
    );
    assert_eq!(pg("COMMIT").describe(), "COMMIT");
    assert_eq!(
        pg("BEGIN ISOLATION LEVEL REPEATABLE READ").describe(),
        "BEGIN ISOLATION LEVEL REPEATABLE READ"
    );
    assert_eq!(
        pg("LOCK TABLE accounts IN EXCLUSIVE MODE NOWAIT").describe(),
        "lock table accounts (EXCLUSIVE NOWAIT)"
    );
    assert_eq!(
        pg("SELECT * FROM t WHERE a = 1 AND b IN ('x', 'y') FOR SHARE SKIP LOCKED").describe(),
        "read t[a=1, b in ('x','y')] (FOR SHARE) SKIP LOCKED"
    );
    assert_eq!(
        pg("UPDATE accounts SET balance = 0 WHERE name = 'o''brien'").describe(),
        "write accounts[name='o''brien'] (row lock)"
    );
    assert_eq!(pg("SET search_path TO public").describe(), "other");
    assert_eq!(pg("CALL f()").describe(), "may touch any table");
}

#[test]
fn psycopg_tuple_in_expands_to_a_list() {
    let tuple = Param::List(vec![Param::Text("alice".into()), Param::Text("bob".into())]);
    for d in [Dialect::PostgreSql, Dialect::MySql] {
        let fp = analyse(
            "SELECT * FROM accounts WHERE name IN %s FOR UPDATE",
            std::slice::from_ref(&tuple),
            d,
        );
        assert!(!fp.unparsed, "{d:?}: {:?}", fp.parse_error);
        assert_eq!(
            only(&fp).rows,
            keys(&[("name", text("alice")), ("name", text("bob"))]),
            "{d:?}"
        );
    }
    let scalar = analyse(
        "SELECT * FROM accounts WHERE name IN %s",
        &[Param::Int(1)],
        PG,
    );
    assert_eq!(only(&scalar).rows, Rows::All);
}

#[test]
fn mysql_and_sqlite_forms() {
    let my = Dialect::MySql;
    let lock = analyse("LOCK TABLES accounts WRITE, counts READ", &[], my);
    assert_eq!(lock.kind, StatementKind::Lock);
    let modes: Vec<_> = lock
        .table_locks
        .iter()
        .map(|l| (l.table.as_str(), l.mode))
        .collect();
    assert_eq!(
        modes,
        [
            ("accounts", TableLockMode::AccessExclusive),
            ("counts", TableLockMode::Share)
        ]
    );
    let fu = analyse(
        "SELECT * FROM `Accounts` WHERE name = %s FOR UPDATE",
        &[Param::Text("Bob".into())],
        my,
    );
    let a = only(&fu);
    assert_eq!(
        (a.table.as_str(), a.lock.map(|l| l.mode)),
        ("accounts", Some(RowLockMode::Update))
    );
    assert_eq!(a.rows, keys(&[("name", text("bob"))]));
    let upsert = analyse(
        "INSERT INTO counts (id, counter) VALUES (%s, 1) ON DUPLICATE KEY UPDATE counter = counter + 1",
        &[Param::Int(1)],
        my,
    );
    let u = only(&upsert);
    assert_eq!(
        (u.mode, &u.rows),
        (AccessMode::Write, &Rows::All),
        "the unique key is not known"
    );
    let lite = analyse(
        "UPDATE accounts SET balance = ?1 WHERE name = :who",
        &[Param::Int(5)],
        Dialect::Sqlite,
    );
    assert!(!lite.unparsed, "{:?}", lite.parse_error);
    assert_eq!(only(&lite).rows, Rows::All, ":who has no value here");
    let named = vec![("who".to_string(), Param::Text("alice".into()))];
    let lite_named = analyse_with(
        "DELETE FROM accounts WHERE name = :who",
        Params::named(&named),
        Dialect::Sqlite,
    );
    assert_eq!(only(&lite_named).rows, keys(&[("name", text("alice"))]));
}
