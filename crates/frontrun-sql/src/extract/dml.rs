//! INSERT, UPDATE and DELETE: the written rows, their row locks, and the
//! tables they read.

use sqlparser::ast::{
    self, Assignment, AssignmentTarget, ConflictTarget, Expr, FromTable, ObjectName,
    OnConflictAction, OnInsert, SelectItem, SetExpr, TableObject, TableWithJoins,
    UpdateTableFromKind,
};

use super::{Extractor, Pins, Rel, TAccess};
use crate::footprint::{AccessMode, RowLock, RowLockMode};

impl Extractor<'_> {
    pub(super) fn insert(&mut self, ins: &ast::Insert) {
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
            changes: None,
        });
    }

    pub(super) fn update(
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
            let changes = if i == 0 {
                adjust_for_assignments(self, &mut rel.pins, assignments);
                Some(assigned_columns(self, assignments))
            } else {
                // MySQL multi-table UPDATE may write any joined table.
                rel.pins.clear();
                None
            };
            self.push_write(rel, changes);
        }
        for rel in sources {
            self.push_read(rel);
        }
    }

    pub(super) fn delete(&mut self, del: &ast::Delete) {
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
                self.push_write(rel, None);
            } else {
                self.push_read(rel);
            }
        }
        for rel in sources {
            self.push_read(rel);
        }
    }

    pub(super) fn push_write(&mut self, rel: Rel, changes: Option<Vec<String>>) {
        self.accesses.push(TAccess {
            table: rel.table,
            mode: AccessMode::Write,
            pins: rel.pins,
            lock: Some(RowLock {
                mode: RowLockMode::Update,
                nowait: false,
                skip_locked: false,
            }),
            changes,
        });
    }

    pub(super) fn push_read(&mut self, rel: Rel) {
        self.accesses.push(TAccess {
            table: rel.table,
            mode: AccessMode::Read,
            pins: rel.pins,
            lock: None,
            changes: None,
        });
    }
}

/// UPDATE rewrites the assigned columns of the rows it touches: the written
/// row set must include the post-image, so an assigned pinned column gains
/// the new value, or stops being pinned when the value is not a constant.
/// The columns an UPDATE's assignments write (last name part, as pinned).
fn assigned_columns(ex: &Extractor<'_>, assignments: &[Assignment]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in assignments {
        let names: Vec<&ast::ObjectNamePart> = match &a.target {
            AssignmentTarget::ColumnName(c) => c.0.last().into_iter().collect(),
            AssignmentTarget::Tuple(cs) => cs.iter().filter_map(|c| c.0.last()).collect(),
        };
        for p in names {
            let col = ex.object_name(&ObjectName(vec![p.clone()]));
            if !out.contains(&col) {
                out.push(col);
            }
        }
    }
    out
}

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
