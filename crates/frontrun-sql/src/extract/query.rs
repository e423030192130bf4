//! Queries: relations in scope, row locks, and sub-queries inside expressions.

use sqlparser::ast;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, JoinConstraint,
    JoinOperator, LockType, NonBlock, OrderByKind, Query, Select, SelectItem, SetExpr, TableFactor,
    TableWithJoins,
};

use super::{Extractor, Rel, TAccess};
use crate::footprint::{AccessMode, Footprint, RowLock, RowLockMode};

impl Extractor<'_> {
    /// Analyses a nested query, which may (`true`) or may not see the
    /// columns of the enclosing one.
    pub(super) fn correlated(&mut self, q: &Query, may_correlate: bool) {
        let saved = self.in_correlated;
        self.in_correlated = may_correlate;
        self.query(q);
        self.in_correlated = saved;
    }

    pub(super) fn query(&mut self, q: &Query) {
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
                changes: None,
            });
        }
        self.ctes.truncate(depth);
    }

    /// The relations the set expression reads directly (locks apply to them);
    /// nested queries push their own accesses.
    pub(super) fn set_expr(&mut self, body: &SetExpr) -> Vec<Rel> {
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

    pub(super) fn select(&mut self, s: &Select) -> Vec<Rel> {
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

    pub(super) fn table_with_joins(&mut self, twj: &TableWithJoins, rels: &mut Vec<Rel>) {
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

    pub(super) fn table_factor(&mut self, f: &TableFactor, rels: &mut Vec<Rel>) {
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

    // ---- sub-query discovery ---------------------------------------------------

    pub(super) fn walk_items(&mut self, items: Option<&[SelectItem]>) {
        for item in items.into_iter().flatten() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                self.walk(e);
            }
        }
    }

    /// Finds the sub-queries inside an expression and records their reads.
    /// Functions are assumed not to read tables.
    pub(super) fn walk(&mut self, e: &Expr) {
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
    pub(super) fn walk_opaque(&mut self, text: &str) {
        if text.to_ascii_uppercase().contains("SELECT") {
            self.global = true;
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
