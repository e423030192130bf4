"""The native SQL binding: footprints, the per-database lock model, events and sites."""

from __future__ import annotations

import pytest

from frontrun import _native as n

SELECT_ALICE = "SELECT balance FROM accounts WHERE name=%s"
UPDATE = "UPDATE accounts SET balance=%s WHERE name=%s"


def conflicting(a: list[tuple[int, int | None, str]], b: list[tuple[int, int | None, str]]) -> bool:
    """The engine's rule: same object, overlapping keys, at least one write;
    or two acquisitions of one lock."""
    return any(
        x[0] == y[0]
        and (
            (x[2], y[2]) == ("acquire", "acquire")
            or (
                "write" in (x[2], y[2])
                and {x[2], y[2]} <= {"read", "write"}
                and (x[1] is None or y[1] is None or x[1] == y[1])
            )
        )
        for x in a
        for y in b
    )


def test_kinds_and_transaction_control() -> None:
    assert n.sql_footprint("SELECT 1").kind == "select"
    assert n.sql_footprint("INSERT INTO t(a) VALUES (1)").kind == "insert"
    assert n.sql_footprint("UPDATE t SET a=1").kind == "update"
    assert n.sql_footprint("DELETE FROM t").kind == "delete"
    begin = n.sql_footprint("BEGIN")
    assert begin.kind == "begin" and begin.begins and not begin.ends_transaction
    assert begin.inert
    commit = n.sql_footprint("COMMIT")
    assert commit.ends_transaction and not commit.rolls_back and commit.txn == ["commit"]
    assert n.sql_footprint("ROLLBACK").rolls_back
    assert n.sql_footprint("SAVEPOINT s1").txn == ["savepoint s1"]


def test_isolation_level_of_begin_and_set_transaction() -> None:
    assert n.sql_footprint("BEGIN ISOLATION LEVEL SERIALIZABLE").isolation == "serializable"
    st = n.sql_footprint("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    assert st.isolation == "repeatable read" and not st.isolation_for_session
    ss = n.sql_footprint(
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
    )
    assert ss.isolation == "read committed" and ss.isolation_for_session
    assert n.sql_footprint("BEGIN").isolation is None


@pytest.mark.parametrize(
    ("sql", "alice", "bob", "dialect"),
    [
        (UPDATE, (1, "alice"), (1, "bob"), "postgresql"),
        (
            "UPDATE accounts SET balance=%(b)s WHERE name=%(n)s",
            {"b": 1, "n": "alice"},
            {"b": 1, "n": "bob"},
            "postgresql",
        ),
        ("UPDATE accounts SET balance=? WHERE name=?", [1, "alice"], [1, "bob"], "sqlite"),
        (
            "UPDATE accounts SET balance=:b WHERE name=:n",
            {"b": 1, "n": "alice"},
            {"b": 1, "n": "bob"},
            "sqlite",
        ),
    ],
)
def test_parameters_pin_rows_in_every_style(
    sql: str, alice: object, bob: object, dialect: str
) -> None:
    a = n.sql_footprint(sql, alice, dialect)
    a2 = n.sql_footprint(sql, alice, dialect)
    b = n.sql_footprint(sql, bob, dialect)
    assert "name='alice'" in a.describe()
    assert a.conflicts(a2)
    assert not a.conflicts(b), (a.describe(), b.describe())
    m = n.DbModel("db")
    # (Without the catalog, `balance` might be unique: writes of it collide.)
    m.declare_unique("accounts", ["name"])
    assert conflicting(m.accesses(1, a), m.accesses(2, a2))
    assert not conflicting(m.accesses(1, a), m.accesses(2, b))


def test_reads_commute_and_writes_do_not() -> None:
    m = n.DbModel("db")
    read = m.accesses(1, n.sql_footprint(SELECT_ALICE, ("alice",)))
    write = m.accesses(2, n.sql_footprint(UPDATE, (5, "alice")))
    write_again = m.accesses(3, n.sql_footprint(UPDATE, (6, "alice")))
    assert not conflicting(read, read)
    # An uncommitted write is invisible: the read commutes with it, not with
    # the commit that publishes it.
    assert not conflicting(read, write)
    m.apply(2, n.sql_footprint(UPDATE, (5, "alice")))
    assert conflicting(read, m.accesses(2, n.sql_footprint("COMMIT")))
    # Two writers of a row take its lock: ordered.
    assert conflicting(write, write_again)


def test_unique_columns_order_writes_of_different_rows() -> None:
    m = n.DbModel("db")
    m.declare_unique("accounts", ["name"])
    bal = m.accesses(1, n.sql_footprint(UPDATE, (5, "alice")))
    bal_bob = m.accesses(2, n.sql_footprint(UPDATE, (5, "bob")))
    rename = m.accesses(3, n.sql_footprint("UPDATE accounts SET name='x' WHERE name='carl'"))
    insert = m.accesses(
        4, n.sql_footprint("INSERT INTO accounts (name, balance) VALUES ('dave', 1)")
    )
    assert not conflicting(bal, bal_bob), "balance is not unique"
    assert conflicting(rename, insert) and not conflicting(bal, insert)
    # A table the catalog did not list: every assigned column may be unique.
    other = n.DbModel("db")
    assert conflicting(
        other.accesses(1, n.sql_footprint(UPDATE, (5, "alice"))),
        other.accesses(2, n.sql_footprint(UPDATE, (5, "bob"))),
    )


def test_python_values_become_parameters() -> None:
    # bool before int, None matches no row, a tuple expands for IN.
    fp = n.sql_footprint("SELECT * FROM t WHERE id IN %s", ((1, 2),))
    assert fp.describe() == "read t[id in (1,2)]"
    assert "flag=true" in n.sql_footprint("SELECT * FROM t WHERE flag=%s", (True,)).describe()
    assert n.sql_footprint("SELECT * FROM t WHERE id=%s", (2**70,)).describe() == "read t[*]"


def test_unparsed_sql_conflicts_with_everything() -> None:
    bad = n.sql_footprint("FROBNICATE accounts")
    assert bad.unparsed and bad.is_global
    assert "unparsed" in bad.describe() and bad.parse_error
    other_table = n.sql_footprint("SELECT * FROM unrelated WHERE id=1")
    assert bad.conflicts(other_table)
    m = n.DbModel("db")
    assert conflicting(m.accesses(1, bad), m.accesses(2, other_table))


def test_databases_do_not_share_objects() -> None:
    fp = n.sql_footprint(UPDATE, (1, "alice"))
    a = n.DbModel("pg:one").accesses(1, fp)
    b = n.DbModel("pg:two").accesses(1, fp)
    assert not conflicting(a, b)


def test_executemany_is_the_union_of_its_rows() -> None:
    fp = n.sql_footprint_many("INSERT INTO t(id) VALUES (?)", [(1,), (2,)], "sqlite")
    assert fp.describe() == "write t[id=1]; write t[id=2]"
    assert fp.kind == "insert"
    assert fp.conflicts(n.sql_footprint("SELECT * FROM t WHERE id=2", None, "sqlite"))
    assert not fp.conflicts(n.sql_footprint("SELECT * FROM t WHERE id=3", None, "sqlite"))


def test_unknown_dialect_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match='unknown SQL dialect "oracle"'):
        n.sql_footprint("SELECT 1", None, "oracle")


def test_lock_model_predicts_row_lock_waits() -> None:
    m = n.DbModel("db")
    upd = n.sql_footprint(UPDATE, (1, "alice"))
    other = n.sql_footprint(UPDATE, (1, "bob"))
    assert m.predict(2, upd) == ("proceeds", [])
    m.apply(1, upd)
    assert m.holders() == [1]
    assert m.predict(2, upd) == ("blocks", [1])
    assert m.predict(1, upd) == ("proceeds", []), "a transaction does not wait for itself"
    # Another row, but its new balance might collide on a unique column.
    assert m.predict(2, other) == ("unknown", [])
    assert m.predict(2, n.sql_footprint(SELECT_ALICE, ("alice",))) == ("proceeds", [])
    nowait = n.sql_footprint("SELECT * FROM accounts WHERE name=%s FOR UPDATE NOWAIT", ("alice",))
    assert m.predict(2, nowait) == ("fails_nowait", [1])
    m.apply(1, n.sql_footprint("COMMIT"))
    assert m.holders() == [] and m.predict(2, upd) == ("proceeds", [])
    m.apply(3, upd)
    m.end(3)
    assert m.predict(2, upd) == ("proceeds", [])


def test_commit_carries_the_transactions_footprint() -> None:
    m = n.DbModel("db")
    commit = n.sql_footprint("COMMIT")
    assert m.accesses(1, commit) == [], "an empty transaction's commit touches nothing"
    read_alice = n.sql_footprint(SELECT_ALICE, ("alice",))
    m.apply(1, read_alice)
    m.apply(1, n.sql_footprint(UPDATE, (1, "alice")))
    done = m.accesses(1, commit)
    bob = m.accesses(2, n.sql_footprint(SELECT_ALICE, ("bob",)))
    alice = m.accesses(2, read_alice)
    assert conflicting(done, alice) and not conflicting(done, bob)
    # A read-only transaction's commit publishes nothing, except under
    # SERIALIZABLE, where its reads can make others fail.
    m.apply(4, read_alice)
    assert not conflicting(m.accesses(4, commit), alice)
    assert conflicting(m.accesses(4, commit, serializable=True), alice)


def test_db_event_is_a_noop_without_a_sink_and_reaches_one() -> None:
    m = n.DbModel("db")
    fp = n.sql_footprint(UPDATE, (1, "alice"))
    assert n.db_event(m, 1, fp, 7) is False
    n._db_capture_start()
    try:
        assert n.db_event(m, 1, fp, 7) is True
        with pytest.raises(RuntimeError, match="already has an event sink"):
            n._db_capture_start()
    finally:
        events = n._db_capture_stop()
    # A fresh model: `m` now counts the row lock as held by transaction 1.
    assert events == [(7, n.DbModel("db").accesses(1, fp))]
    kinds = {k for _, _, k in events[0][1]}
    assert kinds == {"read", "write", "acquire"}, "lock, marker and unique columns"
    assert "acquire" not in {k for _, _, k in m.accesses(1, fp)}, "held locks are not re-acquired"
    assert "release" in {k for _, _, k in m.accesses(1, n.sql_footprint("COMMIT"))}
    with pytest.raises(RuntimeError, match="without _db_capture_start"):
        n._db_capture_stop()


def test_sites_render_transaction_statement_and_values() -> None:
    n.db_sites_clear()
    site = n.db_site("Txn A", "SELECT balance\n  FROM accounts WHERE name='alice'")
    assert site >= 1 << 63
    n.db_site_result(site, "1000")
    assert n.db_site_text(site) == "Txn A | SELECT balance FROM accounts WHERE name='alice' → 1000"
    p = n.db_site("Txn B", UPDATE, "(1100, 'alice')")
    assert n.db_site_text(p) == f"Txn B | {UPDATE}  -- (1100, 'alice')"
    assert n.db_site_text(5) is None, "tracer sites are not database sites"
    n.db_sites_clear()
    assert n.db_site_text(site) is None
