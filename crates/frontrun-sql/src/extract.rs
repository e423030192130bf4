//! From a parsed statement to a footprint *template*: the footprint with
//! parameter slots still unresolved, so that it can be cached by SQL text and
//! instantiated cheaply for each `execute`.

use sqlparser::ast::{
    self, Assignment, AssignmentTarget, BinaryOperator, ConflictTarget, Expr, FromTable,
    FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, JoinConstraint,
    JoinOperator, LockType, NonBlock, ObjectName, ObjectNamePart, ObjectType, OnConflictAction,
    OnInsert, OrderByKind, Query, Select, SelectItem, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, TransactionIsolationLevel, TransactionMode, UnaryOperator, UpdateTableFromKind,
};

use crate::footprint::{
    AccessMode, Footprint, IsolationLevel, RowLock, RowLockMode, StatementKind, TableLock,
    TableLockMode, TxnControl,
};
use crate::lex::{Piece, Slot};
use crate::value::Value;
use crate::Dialect;

/// The value a pinned column is compared with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    Lit(Value),
    Param(Slot),
    /// A parameter holding a list (`col = ANY(%s)`).
    ParamList(Slot),
}

/// Per column, the operands it may equal; columns are ANDed.
pub(crate) type Pins = Vec<(String, Vec<Operand>)>;

/// A table access whose pinned values may still be parameter slots.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TAccess {
    pub table: String,
    pub mode: AccessMode,
    pub pins: Pins,
    pub lock: Option<RowLock>,
}

/// A footprint with unresolved parameters. `base.accesses` is empty; the
/// accesses live in `accesses` until instantiated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Template {
    pub base: Footprint,
    pub accesses: Vec<TAccess>,
}

/// A relation in scope of a `SELECT`/`UPDATE`/`DELETE`, pinned by its WHERE.
#[derive(Clone, Debug)]
struct Rel {
    table: String,
    /// The alias, or else the bare table name: what qualified columns use.
    qualifier: String,
    pins: Pins,
}

pub(crate) struct Extractor<'a> {
    piece: &'a Piece,
    dialect: Dialect,
    accesses: Vec<TAccess>,
    global: bool,
    /// CTE names in scope, innermost last.
    ctes: Vec<String>,
    /// Inside a sub-query that may refer to outer columns: an unqualified
    /// column there may be an outer one, so it pins nothing.
    in_correlated: bool,
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(piece: &'a Piece, dialect: Dialect) -> Self {
        Extractor {
            piece,
            dialect,
            accesses: Vec::new(),
            global: false,
            ctes: Vec::new(),
            in_correlated: false,
        }
    }

    /// Footprint template of one parsed statement.
    pub(crate) fn statement(mut self, st: &Statement) -> Template {
        let mut base = Footprint::default();
        let kind = self.dispatch(st, &mut base);
        base.kind = kind;
        base.kinds = vec![kind];
        base.global |= self.global;
        Template {
            base,
            accesses: self.accesses,
        }
    }

    fn dispatch(&mut self, st: &Statement, fp: &mut Footprint) -> StatementKind {
        use StatementKind as K;
        match st {
            Statement::Query(q) => {
                self.query(q);
                K::Select
            }
            Statement::Insert(ins) => {
                self.insert(ins);
                K::Insert
            }
            Statement::Update {
                table,
                assignments,
                from,
                selection,
                returning,
                ..
            } => {
                self.update(
                    table,
                    assignments,
                    from.as_ref(),
                    selection.as_ref(),
                    returning.as_deref(),
                );
                K::Update
            }
            Statement::Delete(del) => {
                self.delete(del);
                K::Delete
            }
            Statement::StartTransaction { modes, .. } => {
                fp.txn.push(TxnControl::Begin(isolation(modes)));
                K::Begin
            }
            Statement::Commit { .. } => {
                fp.txn.push(TxnControl::Commit);
                K::Commit
            }
            Statement::Rollback {
                savepoint: None, ..
            } => {
                fp.txn.push(TxnControl::Rollback);
                K::Rollback
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => {
                fp.txn.push(TxnControl::RollbackTo(self.ident(name)));
                K::Savepoint
            }
            Statement::Savepoint { name } => {
                fp.txn.push(TxnControl::Savepoint(self.ident(name)));
                K::Savepoint
            }
            Statement::ReleaseSavepoint { name } => {
                fp.txn.push(TxnControl::Release(self.ident(name)));
                K::Savepoint
            }
            Statement::Set(ast::Set::SetTransaction { modes, session, .. }) => {
                match isolation(modes) {
                    Some(level) => {
                        fp.txn.push(TxnControl::SetIsolation {
                            level,
                            session: *session,
                        });
                        K::SetIsolation
                    }
                    None => K::Other,
                }
            }
            // Session settings and introspection touch no table rows.
            Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::Use(_)
            | Statement::Discard { .. }
            | Statement::UnlockTables => K::Other,
            Statement::Explain {
                statement, analyze, ..
            } => {
                if *analyze {
                    // EXPLAIN ANALYZE runs the statement.
                    self.dispatch(statement, fp)
                } else {
                    K::Other
                }
            }
            Statement::CreateTable(ct) => {
                self.exclusive(fp, &ct.name);
                if let Some(q) = &ct.query {
                    self.query(q);
                }
                K::Ddl
            }
            Statement::AlterTable { name, .. } => {
                self.exclusive(fp, name);
                K::Ddl
            }
            Statement::CreateIndex(ci) => {
                let table = self.object_name(&ci.table_name);
                let mode = if ci.concurrently {
                    TableLockMode::ShareUpdateExclusive
                } else {
                    TableLockMode::Share
                };
                fp.table_locks.push(TableLock {
                    table,
                    mode,
                    nowait: false,
                });
                K::Ddl
            }
            Statement::Truncate { table_names, .. } => {
                for t in table_names {
                    self.exclusive(fp, &t.name);
                }
                K::Ddl
            }
            Statement::Drop {
                object_type,
                names,
                table,
                ..
            } => {
                match object_type {
                    ObjectType::Table | ObjectType::View | ObjectType::MaterializedView => {
                        for n in names {
                            self.exclusive(fp, n);
                        }
                    }
                    ObjectType::Index => {
                        // Dropping an index changes plans, not results; only
                        // MySQL's `DROP INDEX … ON t` names the table.
                        if let Some(t) = table {
                            self.exclusive(fp, t);
                        }
                    }
                    _ => self.global = true,
                }
                K::Ddl
            }
            Statement::LockTables { tables } => {
                for t in tables {
                    let mode = match t.lock_type {
                        ast::LockTableType::Read { .. } => TableLockMode::Share,
                        ast::LockTableType::Write { .. } => TableLockMode::AccessExclusive,
                    };
                    fp.table_locks.push(TableLock {
                        table: self.ident(&t.table),
                        mode,
                        nowait: false,
                    });
                }
                K::Lock
            }
            Statement::CreateView { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateFunction(_)
            | Statement::CreateTrigger { .. }
            | Statement::CreateType { .. }
            | Statement::CreateExtension { .. }
            | Statement::AlterView { .. }
            | Statement::AlterIndex { .. }
            | Statement::AlterType(_)
            | Statement::DropFunction { .. }
            | Statement::DropTrigger { .. }
            | Statement::Comment { .. }
            | Statement::RenameTable(_) => {
                self.global = true;
                K::Ddl
            }
            // CALL, COPY, EXECUTE, DO, MERGE…: their effect is not bounded here.
            _ => {
                self.global = true;
                K::Other
            }
        }
    }

    fn exclusive(&mut self, fp: &mut Footprint, name: &ObjectName) {
        fp.table_locks.push(TableLock {
            table: self.object_name(name),
            mode: TableLockMode::AccessExclusive,
            nowait: false,
        });
    }

    // ---- names -------------------------------------------------------------

    /// Lower-cases unquoted identifiers (PostgreSQL folds them); SQLite and
    /// MySQL compare table names case-insensitively, so fold all there.
    fn ident(&self, id: &Ident) -> String {
        if id.quote_style.is_some() && self.dialect == Dialect::PostgreSql {
            id.value.clone()
        } else {
            id.value.to_lowercase()
        }
    }

    fn object_name(&self, name: &ObjectName) -> String {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(id) => self.ident(id),
                ObjectNamePart::Function(f) => self.ident(&f.name),
            })
            .collect();
        parts.join(".")
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        name.0.len() == 1 && self.ctes.contains(&self.object_name(name))
    }

    // ---- queries -------------------------------------------------------------

    /// Analyses a nested query, which may (`true`) or may not see the
    /// columns of the enclosing one.
    fn correlated(&mut self, q: &Query, may_correlate: bool) {
        let saved = self.in_correlated;
        self.in_correlated = may_correlate;
        self.query(q);
        self.in_correlated = saved;
    }

    fn query(&mut self, q: &Query) {
        let depth = self.ctes.len();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = self.ident(&cte.alias.name);
                if with.recursive {
                    self.ctes.push(name.clone());
                }
                self.correlated(&cte.query, false);
                if !with.recursive {
                    self.ctes.push(name);
                }
            }
        }
        let rels = self.set_expr(&q.body);
        if let Some(ob) = &q.order_by {
            if let OrderByKind::Expressions(exprs) = &ob.kind {
                for e in exprs {
                    self.walk(&e.expr);
                }
            }
        }
        if let Some(ast::LimitClause::LimitOffset { limit: Some(l), .. }) = &q.limit_clause {
            self.walk(l);
        }
        let lock_strengths = &self.piece.lock_strengths;
        for rel in rels {
            let mut lock: Option<RowLock> = None;
            for clause in &q.locks {
                if let Some(of) = &clause.of {
                    let target = self.object_name(of);
                    if target != rel.qualifier && target != rel.table {
                        continue;
                    }
                }
                let mode = lock_mode(clause.lock_type, lock_strengths);
                let l = RowLock {
                    mode,
                    nowait: clause.nonblock == Some(NonBlock::Nowait),
                    skip_locked: clause.nonblock == Some(NonBlock::SkipLocked),
                };
                lock = Some(match lock {
                    Some(prev) if prev.mode >= l.mode => prev,
                    _ => l,
                });
            }
            self.accesses.push(TAccess {
                table: rel.table,
                mode: AccessMode::Read,
                pins: rel.pins,
                lock,
            });
        }
        self.ctes.truncate(depth);
    }

    /// The relations the set expression reads directly (locks apply to them);
    /// nested queries push their own accesses.
    fn set_expr(&mut self, body: &SetExpr) -> Vec<Rel> {
        match body {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(q) => {
                self.query(q);
                Vec::new()
            }
            SetExpr::SetOperation { left, right, .. } => {
                let mut rels = self.set_expr(left);
                rels.extend(self.set_expr(right));
                rels
            }
            SetExpr::Values(v) => {
                for row in &v.rows {
                    for e in row {
                        self.walk(e);
                    }
                }
                Vec::new()
            }
            SetExpr::Insert(st) | SetExpr::Update(st) | SetExpr::Delete(st) => {
                let mut scratch = Footprint::default();
                self.dispatch(st, &mut scratch);
                Vec::new()
            }
            SetExpr::Table(t) => match &t.table_name {
                Some(name) if !self.ctes.contains(&name.to_lowercase()) => {
                    let table = match &t.schema_name {
                        Some(s) => format!("{}.{}", s.to_lowercase(), name.to_lowercase()),
                        None => name.to_lowercase(),
                    };
                    vec![Rel {
                        qualifier: name.to_lowercase(),
                        table,
                        pins: Vec::new(),
                    }]
                }
                _ => Vec::new(),
            },
        }
    }

    fn select(&mut self, s: &Select) -> Vec<Rel> {
        if s.into.is_some() {
            // `SELECT … INTO t` creates a table.
            self.global = true;
        }
        let mut rels = Vec::new();
        for twj in &s.from {
            self.table_with_joins(twj, &mut rels);
        }
        if let Some(sel) = &s.selection {
            self.pin(sel, &mut rels);
            self.walk(sel);
        }
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    self.walk(e)
                }
                _ => {}
            }
        }
        if let GroupByExpr::Expressions(exprs, _) = &s.group_by {
            for e in exprs {
                self.walk(e);
            }
        }
        for e in s
            .having
            .iter()
            .chain(s.qualify.iter())
            .chain(s.prewhere.iter())
        {
            self.walk(e);
        }
        rels
    }

    fn table_with_joins(&mut self, twj: &TableWithJoins, rels: &mut Vec<Rel>) {
        self.table_factor(&twj.relation, rels);
        for j in &twj.joins {
            self.table_factor(&j.relation, rels);
            match join_constraint(&j.join_operator) {
                Some(JoinConstraint::On(e)) => self.walk(e),
                Some(_) => {}
                None => self.walk_opaque(&format!("{:?}", j.join_operator)),
            }
        }
    }

    fn table_factor(&mut self, f: &TableFactor, rels: &mut Vec<Rel>) {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    // A set-returning function call: may read anything.
                    self.global = true;
                    return;
                }
                if self.is_cte(name) {
                    return;
                }
                let table = self.object_name(name);
                let qualifier = match alias {
                    Some(a) => self.ident(&a.name),
                    None => table.rsplit('.').next().unwrap_or(&table).to_string(),
                };
                rels.push(Rel {
                    table,
                    qualifier,
                    pins: Vec::new(),
                });
            }
            TableFactor::Derived {
                subquery, lateral, ..
            } => self.correlated(subquery, *lateral),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins, rels),
            TableFactor::UNNEST { array_exprs, .. } => {
                for e in array_exprs {
                    self.walk(e);
                }
            }
            other => self.walk_opaque(&other.to_string()),
        }
    }

    // ---- DML -------------------------------------------------------------------

    fn insert(&mut self, ins: &ast::Insert) {
        let TableObject::TableName(name) = &ins.table else {
            self.global = true;
            return;
        };
        let table = self.object_name(name);
        let columns: Vec<String> = ins.columns.iter().map(|c| self.ident(c)).collect();
        let mut pins: Pins = Vec::new();
        if let Some(src) = &ins.source {
            match (&*src.body, &src.with) {
                (SetExpr::Values(values), None) if !columns.is_empty() => {
                    for (i, col) in columns.iter().enumerate() {
                        let mut ops = Vec::new();
                        let mut known = true;
                        for row in &values.rows {
                            match row.get(i).and_then(|e| self.operand(e)) {
                                Some(op) => ops.push(op),
                                None => known = false,
                            }
                        }
                        if known && !ops.is_empty() {
                            pins.push((col.clone(), ops));
                        }
                    }
                    for row in &values.rows {
                        for e in row {
                            self.walk(e);
                        }
                    }
                }
                // INSERT … SELECT: the source's reads; the new rows are unknown.
                _ => self.query(src),
            }
        }
        for a in &ins.assignments {
            if let (AssignmentTarget::ColumnName(c), Some(op)) = (&a.target, self.operand(&a.value))
            {
                pins.push((self.object_name(c), vec![op]));
            }
            self.walk(&a.value);
        }
        let mut lock = None;
        match &ins.on {
            Some(OnInsert::OnConflict(oc)) => {
                if let OnConflictAction::DoUpdate(du) = &oc.action {
                    // The existing row shares only the conflict target's values.
                    match &oc.conflict_target {
                        Some(ConflictTarget::Columns(cols)) => {
                            let keep: Vec<String> = cols.iter().map(|c| self.ident(c)).collect();
                            pins.retain(|(c, _)| keep.contains(c));
                        }
                        _ => pins.clear(),
                    }
                    adjust_for_assignments(self, &mut pins, &du.assignments);
                    for e in du.selection.iter() {
                        self.walk(e);
                    }
                    lock = Some(RowLock {
                        mode: RowLockMode::Update,
                        nowait: false,
                        skip_locked: false,
                    });
                }
            }
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                pins.clear();
                for a in assignments {
                    self.walk(&a.value);
                }
                lock = Some(RowLock {
                    mode: RowLockMode::Update,
                    nowait: false,
                    skip_locked: false,
                });
            }
            Some(_) => pins.clear(),
            None => {}
        }
        if ins.replace_into {
            pins.clear();
        }
        self.walk_items(ins.returning.as_deref());
        self.accesses.push(TAccess {
            table,
            mode: AccessMode::Write,
            pins,
            lock,
        });
    }

    fn update(
        &mut self,
        table: &TableWithJoins,
        assignments: &[Assignment],
        from: Option<&UpdateTableFromKind>,
        selection: Option<&Expr>,
        returning: Option<&[SelectItem]>,
    ) {
        let mut targets = Vec::new();
        self.table_with_joins(table, &mut targets);
        let mut sources = Vec::new();
        if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) = from {
            for twj in f {
                self.table_with_joins(twj, &mut sources);
            }
        }
        let n_targets = targets.len();
        let mut rels = targets;
        rels.extend(sources);
        if let Some(sel) = selection {
            self.pin(sel, &mut rels);
            self.walk(sel);
        }
        for a in assignments {
            self.walk(&a.value);
        }
        self.walk_items(returning);
        let sources = rels.split_off(n_targets);
        for (i, mut rel) in rels.into_iter().enumerate() {
            if i == 0 {
                adjust_for_assignments(self, &mut rel.pins, assignments);
            } else {
                // MySQL multi-table UPDATE may write any joined table.
                rel.pins.clear();
            }
            self.push_write(rel);
        }
        for rel in sources {
            self.push_read(rel);
        }
    }

    fn delete(&mut self, del: &ast::Delete) {
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &del.from;
        let mut targets = Vec::new();
        for twj in from {
            self.table_with_joins(twj, &mut targets);
        }
        let mut rels = targets;
        let n_targets = rels.len();
        for twj in del.using.iter().flatten() {
            self.table_with_joins(twj, &mut rels);
        }
        if let Some(sel) = &del.selection {
            self.pin(sel, &mut rels);
            self.walk(sel);
        }
        self.walk_items(del.returning.as_deref());
        let sources = rels.split_off(n_targets);
        let named: Vec<String> = del.tables.iter().map(|t| self.object_name(t)).collect();
        for rel in rels {
            // MySQL `DELETE t1 FROM t1 JOIN t2`: only the named tables lose rows.
            if named.is_empty() || named.contains(&rel.qualifier) || named.contains(&rel.table) {
                self.push_write(rel);
            } else {
                self.push_read(rel);
            }
        }
        for rel in sources {
            self.push_read(rel);
        }
    }

    fn push_write(&mut self, rel: Rel) {
        self.accesses.push(TAccess {
            table: rel.table,
            mode: AccessMode::Write,
            pins: rel.pins,
            lock: Some(RowLock {
                mode: RowLockMode::Update,
                nowait: false,
                skip_locked: false,
            }),
        });
    }

    fn push_read(&mut self, rel: Rel) {
        self.accesses.push(TAccess {
            table: rel.table,
            mode: AccessMode::Read,
            pins: rel.pins,
            lock: None,
        });
    }

    // ---- WHERE pinning -----------------------------------------------------

    /// Records, for each relation, the columns its WHERE pins by equality.
    /// Conjuncts that pin nothing are ignored: dropping a conjunct only
    /// enlarges the row set, which keeps the footprint sound.
    fn pin(&self, e: &Expr, rels: &mut [Rel]) {
        let mut conj = Vec::new();
        conjuncts(e, &mut conj);
        for c in conj {
            let Some((qual, col, ops)) = self.equality(c) else {
                continue;
            };
            let target = match qual {
                Some(q) => rels.iter().position(|r| r.qualifier == q || r.table == q),
                None if rels.len() == 1 && !self.in_correlated => Some(0),
                None => None,
            };
            if let Some(i) = target {
                let pins = &mut rels[i].pins;
                // A second equality on the same column only narrows the set.
                if !pins.iter().any(|(c, _)| *c == col) {
                    pins.push((col, ops));
                }
            }
        }
    }

    /// `col = x`, `x = col`, `col IN (x, …)`, `col = ANY(ARRAY[x, …])`,
    /// `col = ANY($n)`.
    fn equality(&self, e: &Expr) -> Option<(Option<String>, String, Vec<Operand>)> {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                if let (Some((q, c)), Some(op)) = (self.column(left), self.operand(right)) {
                    return Some((q, c, vec![op]));
                }
                let ((q, c), op) = (self.column(right)?, self.operand(left)?);
                Some((q, c, vec![op]))
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                let (q, c) = self.column(expr)?;
                if let [one] = list.as_slice() {
                    if let Some(slot) = self.list_slot(one) {
                        return Some((q, c, vec![Operand::ParamList(slot)]));
                    }
                }
                let ops: Option<Vec<Operand>> = list.iter().map(|x| self.operand(x)).collect();
                Some((q, c, ops?))
            }
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => {
                let (q, c) = self.column(left)?;
                let ops = match strip(right) {
                    Expr::Array(arr) => arr
                        .elem
                        .iter()
                        .map(|x| self.operand(x))
                        .collect::<Option<Vec<_>>>()?,
                    other => match self.operand(other)? {
                        Operand::Param(slot) => vec![Operand::ParamList(slot)],
                        _ => return None,
                    },
                };
                Some((q, c, ops))
            }
            Expr::Nested(inner) => self.equality(inner),
            _ => None,
        }
    }

    fn column(&self, e: &Expr) -> Option<(Option<String>, String)> {
        match strip(e) {
            Expr::Identifier(id) if !is_slot_ident(id) => Some((None, self.ident(id))),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let n = parts.len();
                Some((Some(self.ident(&parts[n - 2])), self.ident(&parts[n - 1])))
            }
            _ => None,
        }
    }

    fn operand(&self, e: &Expr) -> Option<Operand> {
        match strip(e) {
            Expr::Value(v) => self.literal(&v.value),
            Expr::Identifier(id) if is_slot_ident(id) => self.slot(&id.value).map(Operand::Param),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match strip(expr) {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => {
                        Value::from_number(&format!("-{n}")).map(Operand::Lit)
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    fn literal(&self, v: &ast::Value) -> Option<Operand> {
        use ast::Value as V;
        Some(match v {
            V::Number(n, _) => Operand::Lit(Value::from_number(n)?),
            // psycopg turns `%%` into `%` even inside quotes when it has
            // parameters, and not without: the value is uncertain.
            V::SingleQuotedString(s) | V::EscapedStringLiteral(s) | V::NationalStringLiteral(s)
                if s.contains("%%") =>
            {
                return None
            }
            V::SingleQuotedString(s)
            | V::EscapedStringLiteral(s)
            | V::NationalStringLiteral(s)
            | V::UnicodeStringLiteral(s) => Operand::Lit(Value::Text(s.clone())),
            V::DollarQuotedString(d) => Operand::Lit(Value::Text(d.value.clone())),
            V::DoubleQuotedString(s) if self.dialect != Dialect::PostgreSql => {
                Operand::Lit(Value::Text(s.clone()))
            }
            V::Boolean(b) => Operand::Lit(Value::Bool(*b)),
            V::Null => Operand::Lit(Value::Null),
            V::Placeholder(p) => Operand::Param(self.slot(p)?),
            _ => return None,
        })
    }

    /// The slot of an `IN %s` the pre-pass parenthesised.
    fn list_slot(&self, e: &Expr) -> Option<Slot> {
        let text = match strip(e) {
            Expr::Value(v) => match &v.value {
                ast::Value::Placeholder(p) => p.as_str(),
                _ => return None,
            },
            Expr::Identifier(id) if is_slot_ident(id) => id.value.as_str(),
            _ => return None,
        };
        let n: usize = text.strip_prefix('$')?.parse().ok()?;
        if self.piece.list_slots.contains(&n) {
            self.slot(text)
        } else {
            None
        }
    }

    /// Maps `$n` (and SQLite's `:name`, `@name`) to where its value comes from.
    fn slot(&self, text: &str) -> Option<Slot> {
        if let Some(num) = text.strip_prefix('$') {
            if let Ok(n) = num.parse::<usize>() {
                if n == 0 {
                    return None;
                }
                return Some(
                    self.piece
                        .slots
                        .get(n - 1)
                        .cloned()
                        .unwrap_or(Slot::Positional(n - 1)),
                );
            }
            return Some(Slot::Named(num.to_string()));
        }
        if let Some(name) = text.strip_prefix(':').or_else(|| text.strip_prefix('@')) {
            return Some(Slot::Named(name.to_string()));
        }
        None
    }

    // ---- sub-query discovery ---------------------------------------------------

    fn walk_items(&mut self, items: Option<&[SelectItem]>) {
        for item in items.into_iter().flatten() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                self.walk(e);
            }
        }
    }

    /// Finds the sub-queries inside an expression and records their reads.
    /// Functions are assumed not to read tables.
    fn walk(&mut self, e: &Expr) {
        match e {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString { .. }
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..)
            | Expr::Interval(_) => {}
            Expr::Subquery(q) => self.correlated(q, true),
            Expr::Exists { subquery, .. } => self.correlated(subquery, true),
            Expr::InSubquery { expr, subquery, .. } => {
                self.walk(expr);
                self.correlated(subquery, true);
            }
            Expr::BinaryOp { left, right, .. }
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right) => {
                self.walk(left);
                self.walk(right);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsTrue(expr)
            | Expr::IsFalse(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNotFalse(expr)
            | Expr::IsUnknown(expr)
            | Expr::IsNotUnknown(expr)
            | Expr::Collate { expr, .. }
            | Expr::Extract { expr, .. } => self.walk(expr),
            Expr::InList { expr, list, .. } => {
                self.walk(expr);
                for x in list {
                    self.walk(x);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.walk(expr);
                self.walk(low);
                self.walk(high);
            }
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. } => {
                self.walk(expr);
                self.walk(pattern);
            }
            Expr::Tuple(xs) => {
                for x in xs {
                    self.walk(x);
                }
            }
            Expr::Array(arr) => {
                for x in &arr.elem {
                    self.walk(x);
                }
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                for x in operand.iter().chain(else_result.iter()) {
                    self.walk(x);
                }
                for cw in conditions {
                    self.walk(&cw.condition);
                    self.walk(&cw.result);
                }
            }
            Expr::Function(f) => {
                match &f.args {
                    FunctionArguments::None => {}
                    FunctionArguments::Subquery(q) => self.correlated(q, true),
                    FunctionArguments::List(list) => {
                        for a in &list.args {
                            let arg = match a {
                                FunctionArg::Named { arg, .. }
                                | FunctionArg::ExprNamed { arg, .. }
                                | FunctionArg::Unnamed(arg) => arg,
                            };
                            if let FunctionArgExpr::Expr(x) = arg {
                                self.walk(x);
                            }
                        }
                    }
                }
                if let Some(filter) = &f.filter {
                    self.walk(filter);
                }
            }
            other => self.walk_opaque(&other.to_string()),
        }
    }

    /// A construct not walked structurally: if its text could hold a
    /// sub-query, give up bounding the footprint.
    fn walk_opaque(&mut self, text: &str) {
        if text.to_ascii_uppercase().contains("SELECT") {
            self.global = true;
        }
    }
}

/// UPDATE rewrites the assigned columns of the rows it touches: the written
/// row set must include the post-image, so an assigned pinned column gains
/// the new value, or stops being pinned when the value is not a constant.
fn adjust_for_assignments(ex: &Extractor<'_>, pins: &mut Pins, assignments: &[Assignment]) {
    for a in assignments {
        let cols: Vec<String> = match &a.target {
            AssignmentTarget::ColumnName(c) => {
                c.0.last()
                    .into_iter()
                    .map(|p| ex.object_name(&ObjectName(vec![p.clone()])))
                    .collect()
            }
            AssignmentTarget::Tuple(cs) => cs
                .iter()
                .filter_map(|c| c.0.last())
                .map(|p| ex.object_name(&ObjectName(vec![p.clone()])))
                .collect(),
        };
        let single = matches!(a.target, AssignmentTarget::ColumnName(_));
        for col in cols {
            let Some(pos) = pins.iter().position(|(c, _)| *c == col) else {
                continue;
            };
            match ex.operand(&a.value) {
                Some(op) if single => pins[pos].1.push(op),
                _ => {
                    pins.remove(pos);
                }
            }
        }
    }
}

fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c) => Some(c),
        J::CrossJoin => Some(&JoinConstraint::None),
        _ => None,
    }
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Looks through parentheses and casts (`'alice'::text`, `$1::int`).
fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => strip(inner),
        other => other,
    }
}

/// MySQL's tokenizer reads our `$n` slots as identifiers.
fn is_slot_ident(id: &Ident) -> bool {
    id.quote_style.is_none()
        && id.value.starts_with('$')
        && id.value[1..].bytes().all(|b| b.is_ascii_digit())
}

fn isolation(modes: &[TransactionMode]) -> Option<IsolationLevel> {
    modes.iter().find_map(|m| match m {
        TransactionMode::IsolationLevel(l) => Some(match l {
            TransactionIsolationLevel::ReadUncommitted => IsolationLevel::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => IsolationLevel::ReadCommitted,
            TransactionIsolationLevel::RepeatableRead => IsolationLevel::RepeatableRead,
            // SQL Server's SNAPSHOT behaves like PostgreSQL's REPEATABLE READ.
            TransactionIsolationLevel::Serializable => IsolationLevel::Serializable,
            TransactionIsolationLevel::Snapshot => IsolationLevel::RepeatableRead,
        }),
        TransactionMode::AccessMode(_) => None,
    })
}

/// sqlparser only knows `FOR UPDATE` / `FOR SHARE`; the pre-pass recorded
/// which strengths the text asked for. A clause takes the weaker strength
/// only if every clause of its kind in the statement asked for it.
fn lock_mode(t: LockType, written: &[RowLockMode]) -> RowLockMode {
    match t {
        LockType::Update => {
            let upd: Vec<_> = written
                .iter()
                .filter(|m| **m >= RowLockMode::NoKeyUpdate)
                .collect();
            if !upd.is_empty() && upd.iter().all(|m| **m == RowLockMode::NoKeyUpdate) {
                RowLockMode::NoKeyUpdate
            } else {
                RowLockMode::Update
            }
        }
        LockType::Share => {
            let sh: Vec<_> = written
                .iter()
                .filter(|m| **m <= RowLockMode::Share)
                .collect();
            if !sh.is_empty() && sh.iter().all(|m| **m == RowLockMode::KeyShare) {
                RowLockMode::KeyShare
            } else {
                RowLockMode::Share
            }
        }
    }
}

/// Hand parser for PostgreSQL's `LOCK [TABLE] [ONLY] name [*] [, …]
/// [IN mode MODE] [NOWAIT]`, which sqlparser 0.58 does not know.
pub(crate) fn parse_pg_lock(text: &str, dialect: Dialect) -> Result<Vec<TableLock>, String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let d = sqlparser::dialect::PostgreSqlDialect {};
    let toks: Vec<Token> = Tokenizer::new(&d, text)
        .tokenize()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.clone()),
        _ => None,
    };
    let upper = |t: &Token| {
        word(t)
            .filter(|w| w.quote_style.is_none())
            .map(|w| w.value.to_ascii_uppercase())
    };
    let mut i = 1; // past LOCK
    if toks.get(i).and_then(upper).as_deref() == Some("TABLE") {
        i += 1;
    }
    if toks.get(i).and_then(upper).as_deref() == Some("ONLY") {
        i += 1;
    }
    let mut names = Vec::new();
    let mut parts = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Token::Word(w)
                if w.quote_style.is_some()
                    || !matches!(w.value.to_ascii_uppercase().as_str(), "IN" | "NOWAIT") =>
            {
                let id = Ident {
                    value: w.value.clone(),
                    quote_style: w.quote_style,
                    span: sqlparser::tokenizer::Span::empty(),
                };
                let folded = if id.quote_style.is_some() && dialect == Dialect::PostgreSql {
                    id.value
                } else {
                    id.value.to_lowercase()
                };
                parts.push(folded);
            }
            Token::Period | Token::Mul => {}
            Token::Comma => names.push(std::mem::take(&mut parts).join(".")),
            _ => break,
        }
        i += 1;
    }
    if !parts.is_empty() {
        names.push(parts.join("."));
    }
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err("LOCK: expected a table name".into());
    }
    let mut mode = TableLockMode::AccessExclusive;
    let mut nowait = false;
    let rest: Vec<String> = toks[i..]
        .iter()
        .map(|t| upper(t).unwrap_or_default())
        .collect();
    let mut j = 0;
    if rest.first().map(String::as_str) == Some("IN") {
        let end = rest
            .iter()
            .position(|w| w == "MODE")
            .ok_or("LOCK: expected MODE after the lock mode")?;
        mode = match rest[1..end].join(" ").as_str() {
            "ACCESS SHARE" => TableLockMode::AccessShare,
            "ROW SHARE" => TableLockMode::RowShare,
            "ROW EXCLUSIVE" => TableLockMode::RowExclusive,
            "SHARE UPDATE EXCLUSIVE" => TableLockMode::ShareUpdateExclusive,
            "SHARE" => TableLockMode::Share,
            "SHARE ROW EXCLUSIVE" => TableLockMode::ShareRowExclusive,
            "EXCLUSIVE" => TableLockMode::Exclusive,
            "ACCESS EXCLUSIVE" => TableLockMode::AccessExclusive,
            other => return Err(format!("LOCK: unknown lock mode {other:?}")),
        };
        j = end + 1;
    }
    if rest.get(j).map(String::as_str) == Some("NOWAIT") {
        nowait = true;
        j += 1;
    }
    if j < rest.len() {
        return Err(format!("LOCK: unexpected {:?}", toks[i + j].to_string()));
    }
    Ok(names
        .into_iter()
        .map(|table| TableLock {
            table,
            mode,
            nowait,
        })
        .collect())
}
