//! WHERE equalities that pin rows, and the literals and parameters they use.

use sqlparser::ast::{self, BinaryOperator, Expr, Ident, UnaryOperator};

use super::{Extractor, Operand, Rel};
use crate::lex::ParamSlot;
use crate::value::Value;
use crate::Dialect;

impl Extractor<'_> {
    /// Records, for each relation, the columns its WHERE pins by equality.
    /// Conjuncts that pin nothing are ignored: dropping a conjunct only
    /// enlarges the row set, which keeps the footprint sound.
    pub(super) fn pin(&self, e: &Expr, rels: &mut [Rel]) {
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
    pub(super) fn equality(&self, e: &Expr) -> Option<(Option<String>, String, Vec<Operand>)> {
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

    pub(super) fn column(&self, e: &Expr) -> Option<(Option<String>, String)> {
        match strip(e) {
            Expr::Identifier(id) if !is_slot_ident(id) => Some((None, self.ident(id))),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let n = parts.len();
                Some((Some(self.ident(&parts[n - 2])), self.ident(&parts[n - 1])))
            }
            _ => None,
        }
    }

    pub(super) fn operand(&self, e: &Expr) -> Option<Operand> {
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

    pub(super) fn literal(&self, v: &ast::Value) -> Option<Operand> {
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
    pub(super) fn list_slot(&self, e: &Expr) -> Option<ParamSlot> {
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
    pub(super) fn slot(&self, text: &str) -> Option<ParamSlot> {
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
                        .unwrap_or(ParamSlot::Positional(n - 1)),
                );
            }
            return Some(ParamSlot::Named(num.to_string()));
        }
        if let Some(name) = text.strip_prefix(':').or_else(|| text.strip_prefix('@')) {
            return Some(ParamSlot::Named(name.to_string()));
        }
        None
    }
}

pub(super) fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
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
pub(super) fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => strip(inner),
        other => other,
    }
}

/// MySQL's tokenizer reads our `$n` slots as identifiers.
pub(super) fn is_slot_ident(id: &Ident) -> bool {
    id.quote_style.is_none()
        && id.value.starts_with('$')
        && id.value[1..].bytes().all(|b| b.is_ascii_digit())
}
