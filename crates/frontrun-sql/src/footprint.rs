//! What one `execute` touches, and when two of them must not be reordered.
use crate::value::Value;

/// The kind of a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    /// `CREATE`, `ALTER`, `DROP`, `TRUNCATE`…
    Ddl,
    /// `LOCK TABLE` (PostgreSQL) or `LOCK TABLES` (MySQL).
    Lock,
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`.
    Savepoint,
    SetIsolation,
    /// Anything else (`SET`, `SHOW`, `CALL`…); see [`Footprint::global`].
    Other,
}

/// Whether an access only reads or also changes rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessMode {
    Read,
    Write,
}

/// The rows of one table an access touches.
///
/// `Keys` holds `(column, value)` pairs. Pairs of one column are
/// alternatives (`name IN ('alice','bob')`); different columns must all hold
/// (`name = 'alice' AND id = 3`). Whatever is not pinned this way is `All`.
#[derive(Clone, Debug, PartialEq)]
pub enum Rows {
    All,
    Keys(Vec<(String, Value)>),
}

impl Rows {
    /// Whether some row could be in both sets. Columns pinned on only one
    /// side say nothing about the other side, so only shared columns can
    /// prove two sets disjoint.
    pub fn overlaps(&self, other: &Rows) -> bool {
        let (Rows::Keys(a), Rows::Keys(b)) = (self, other) else {
            return true;
        };
        a.iter().all(|(col, _)| {
            let mut in_b = b.iter().filter(|(c, _)| c == col).peekable();
            // A column pinned on one side only cannot separate the sets.
            in_b.peek().is_none()
                || in_b.any(|(_, vb)| a.iter().any(|(ca, va)| ca == col && va.may_equal(vb)))
        })
    }

    /// The pinned values of `column`, if it is pinned.
    pub fn values_of(&self, column: &str) -> Option<Vec<&Value>> {
        match self {
            Rows::All => None,
            Rows::Keys(k) => {
                let v: Vec<&Value> = k
                    .iter()
                    .filter(|(c, _)| c == column)
                    .map(|(_, v)| v)
                    .collect();
                (!v.is_empty()).then_some(v)
            }
        }
    }

    /// The first pinned column, the one [`crate::KeyColumns`] learns.
    pub fn first_column(&self) -> Option<&str> {
        match self {
            Rows::All => None,
            Rows::Keys(k) => k.first().map(|(c, _)| c.as_str()),
        }
    }
}

/// PostgreSQL's row-level lock strengths, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowLockMode {
    KeyShare,
    Share,
    NoKeyUpdate,
    Update,
}

impl RowLockMode {
    /// PostgreSQL's row-lock conflict table.
    pub fn conflicts_with(self, other: RowLockMode) -> bool {
        use RowLockMode::*;
        match (self, other) {
            (Update, _) | (_, Update) => true,
            (NoKeyUpdate, KeyShare) | (KeyShare, NoKeyUpdate) => false,
            (NoKeyUpdate, _) | (_, NoKeyUpdate) => true,
            // Share and KeyShare never conflict among themselves.
            _ => false,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            RowLockMode::KeyShare => "FOR KEY SHARE",
            RowLockMode::Share => "FOR SHARE",
            RowLockMode::NoKeyUpdate => "FOR NO KEY UPDATE",
            RowLockMode::Update => "FOR UPDATE",
        }
    }
}

/// A row lock taken by a statement on the rows of its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowLock {
    pub mode: RowLockMode,
    /// `NOWAIT`: fails instead of waiting.
    pub nowait: bool,
    /// `SKIP LOCKED`: skips locked rows instead of waiting.
    pub skip_locked: bool,
}

/// PostgreSQL's table-level lock modes, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableLockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl TableLockMode {
    /// PostgreSQL's table-lock conflict table.
    pub fn conflicts_with(self, other: TableLockMode) -> bool {
        use TableLockMode::*;
        let row = |m: TableLockMode| -> u8 {
            // Bit i set: conflicts with the i-th mode in declaration order.
            match m {
                AccessShare => 0b1000_0000,
                RowShare => 0b1100_0000,
                RowExclusive => 0b1111_0000,
                ShareUpdateExclusive => 0b1111_1000,
                Share => 0b1110_1100,
                ShareRowExclusive => 0b1111_1100,
                Exclusive => 0b1111_1110,
                AccessExclusive => 0b1111_1111,
            }
        };
        row(self) & (1 << (other as u8)) != 0
    }

    pub fn sql(self) -> &'static str {
        use TableLockMode::*;
        match self {
            AccessShare => "ACCESS SHARE",
            RowShare => "ROW SHARE",
            RowExclusive => "ROW EXCLUSIVE",
            ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Share => "SHARE",
            ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Exclusive => "EXCLUSIVE",
            AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }
}

/// One table touched by a statement.
#[derive(Clone, Debug, PartialEq)]
pub struct TableAccess {
    /// Schema-qualified as written, lower-cased unless quoted.
    pub table: String,
    pub mode: AccessMode,
    pub rows: Rows,
    /// The row lock held on `rows` until the transaction ends: explicit
    /// (`FOR UPDATE`…) or implicit (`UPDATE`/`DELETE` take `FOR UPDATE`;
    /// every `UPDATE` is treated as possibly changing a key column).
    pub lock: Option<RowLock>,
    /// For a write, the columns whose values it may change in `rows`:
    /// `Some` for an `UPDATE` (its assigned columns), `None` for anything
    /// else (an `INSERT` or `DELETE` adds or removes every value of a row).
    /// Unique-column collisions are judged from these.
    pub changes: Option<Vec<String>>,
}

impl TableAccess {
    /// The table-level lock this access takes implicitly.
    pub fn table_lock(&self) -> TableLockMode {
        match (self.mode, self.lock) {
            (AccessMode::Write, _) => TableLockMode::RowExclusive,
            (AccessMode::Read, Some(_)) => TableLockMode::RowShare,
            (AccessMode::Read, None) => TableLockMode::AccessShare,
        }
    }
}

/// An explicit table lock: `LOCK TABLE`, DDL, `TRUNCATE`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableLock {
    pub table: String,
    pub mode: TableLockMode,
    pub nowait: bool,
}

/// Transaction isolation levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// A transaction-control effect of a statement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxnControl {
    /// `BEGIN` / `START TRANSACTION`, with its isolation level if given.
    Begin(Option<IsolationLevel>),
    Commit,
    Rollback,
    Savepoint(String),
    RollbackTo(String),
    Release(String),
    /// `SET TRANSACTION ISOLATION LEVEL x` (`session`: for the session).
    SetIsolation {
        level: IsolationLevel,
        session: bool,
    },
}

/// Everything one `execute` reads, writes and locks. Multi-statement strings
/// give the union of their statements.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// Kind of the first statement (`Other` for an empty string).
    pub kind: StatementKind,
    /// Kind of every statement, in order.
    pub kinds: Vec<StatementKind>,
    pub accesses: Vec<TableAccess>,
    pub table_locks: Vec<TableLock>,
    pub txn: Vec<TxnControl>,
    /// Some statement could not be parsed.
    pub unparsed: bool,
    /// The parser's message for the first unparsed statement.
    pub parse_error: Option<String>,
    /// The footprint could not be bounded (unparsed SQL, a function call that
    /// may read anything, unknown statements): it conflicts with every
    /// non-inert footprint of the same database.
    pub global: bool,
}

impl Default for Footprint {
    fn default() -> Self {
        Footprint {
            kind: StatementKind::Other,
            kinds: Vec::new(),
            accesses: Vec::new(),
            table_locks: Vec::new(),
            txn: Vec::new(),
            unparsed: false,
            parse_error: None,
            global: false,
        }
    }
}

impl Footprint {
    /// Whether the statement ends its transaction (releasing its locks and
    /// publishing or discarding its writes).
    pub fn ends_transaction(&self) -> bool {
        self.txn
            .iter()
            .any(|t| matches!(t, TxnControl::Commit | TxnControl::Rollback))
    }

    /// Whether the statement can be reordered with anything: it touches no
    /// table and ends no transaction (`BEGIN`, `SAVEPOINT`, `SET`, `SHOW`).
    pub fn is_inert(&self) -> bool {
        self.accesses.is_empty()
            && self.table_locks.is_empty()
            && !self.global
            && !self.ends_transaction()
    }

    /// Whether running `self` and `other` (from different transactions) in
    /// the opposite order could change an outcome.
    ///
    /// Data: same table, overlapping rows, at least one write. Row locks:
    /// overlapping rows and conflicting strengths. Table locks: PostgreSQL's
    /// table-lock conflict table against the other's explicit or implicit
    /// locks. `COMMIT`/`ROLLBACK` carry no write set here, so they
    /// conservatively conflict with every non-inert footprint; a driver that
    /// tracks the transaction's accumulated footprint (see
    /// [`crate::LockTable::transaction_footprint`]) can test that instead.
    pub fn conflicts(&self, other: &Footprint) -> bool {
        if self.is_inert() || other.is_inert() {
            return false;
        }
        if self.global || other.global || self.ends_transaction() || other.ends_transaction() {
            return true;
        }
        self.table_locks_conflict(other)
            || other.table_locks_conflict(self)
            || self
                .accesses
                .iter()
                .any(|a| other.accesses.iter().any(|b| accesses_conflict(a, b)))
    }

    fn table_locks_conflict(&self, other: &Footprint) -> bool {
        self.table_locks.iter().any(|l| {
            other
                .table_locks
                .iter()
                .filter(|o| same_table(&o.table, &l.table))
                .any(|o| l.mode.conflicts_with(o.mode))
                || other
                    .accesses
                    .iter()
                    .filter(|a| same_table(&a.table, &l.table))
                    .any(|a| l.mode.conflicts_with(a.table_lock()))
        })
    }

    /// Appends the effects of another statement of the same string.
    pub fn union(&mut self, other: Footprint) {
        if self.kinds.is_empty() {
            self.kind = other.kind;
        }
        self.kinds.extend(other.kinds);
        for a in other.accesses {
            if !self.accesses.contains(&a) {
                self.accesses.push(a);
            }
        }
        for l in other.table_locks {
            if !self.table_locks.contains(&l) {
                self.table_locks.push(l);
            }
        }
        self.txn.extend(other.txn);
        self.unparsed |= other.unparsed;
        if self.parse_error.is_none() {
            self.parse_error = other.parse_error;
        }
        self.global |= other.global;
    }
}

/// Schemas are not resolved, so tables match by their last name part.
pub(crate) fn same_table(a: &str, b: &str) -> bool {
    base_name(a) == base_name(b)
}

fn accesses_conflict(a: &TableAccess, b: &TableAccess) -> bool {
    if !same_table(&a.table, &b.table) || !a.rows.overlaps(&b.rows) {
        return false;
    }
    if a.mode == AccessMode::Write || b.mode == AccessMode::Write {
        return true;
    }
    match (a.lock, b.lock) {
        (Some(x), Some(y)) => x.mode.conflicts_with(y.mode),
        _ => false,
    }
}

/// Schemas are not resolved (`accounts` may be `public.accounts`), so a
/// table is identified by its last name part: a conservative merge.
pub(crate) fn base_name(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_lock_table_matches_postgresql() {
        use RowLockMode::*;
        let all = [KeyShare, Share, NoKeyUpdate, Update];
        // Rows: requested mode; columns: held mode (PostgreSQL docs 13.3.2).
        let expected = [
            [false, false, false, true],
            [false, false, true, true],
            [false, true, true, true],
            [true, true, true, true],
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a.conflicts_with(*b), expected[i][j], "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn table_lock_table_is_symmetric_and_matches_postgresql() {
        use TableLockMode::*;
        let all = [
            AccessShare,
            RowShare,
            RowExclusive,
            ShareUpdateExclusive,
            Share,
            ShareRowExclusive,
            Exclusive,
            AccessExclusive,
        ];
        for a in all {
            for b in all {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a:?} vs {b:?}");
            }
        }
        assert!(!RowExclusive.conflicts_with(RowExclusive));
        assert!(RowExclusive.conflicts_with(Share));
        assert!(!Share.conflicts_with(Share));
        assert!(ShareUpdateExclusive.conflicts_with(ShareUpdateExclusive));
        assert!(!AccessShare.conflicts_with(Exclusive));
        assert!(AccessShare.conflicts_with(AccessExclusive));
    }

    fn keys(pairs: &[(&str, Value)]) -> Rows {
        Rows::Keys(
            pairs
                .iter()
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn rows_overlap_only_when_shared_columns_can_match() {
        let alice = keys(&[("name", Value::Text("alice".into()))]);
        let bob = keys(&[("name", Value::Text("bob".into()))]);
        let both = keys(&[
            ("name", Value::Text("bob".into())),
            ("name", Value::Text("alice".into())),
        ]);
        let id3 = keys(&[("id", Value::Int(3))]);
        let alice_id4 = keys(&[("name", Value::Text("alice".into())), ("id", Value::Int(4))]);
        assert!(!alice.overlaps(&bob));
        assert!(alice.overlaps(&both) && both.overlaps(&bob));
        assert!(
            alice.overlaps(&id3),
            "different columns cannot prove disjointness"
        );
        assert!(!alice_id4.overlaps(&id3) && !id3.overlaps(&alice_id4));
        assert!(Rows::All.overlaps(&bob) && bob.overlaps(&Rows::All));
    }
}
