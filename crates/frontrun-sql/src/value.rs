//! Bound parameters and the literal values that pin rows.

use std::fmt;

/// A bound parameter value as the driver passed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Null,
    /// A sequence (psycopg adapts a Python list to an `ARRAY`, as used by
    /// `col = ANY(%s)`).
    List(Vec<Param>),
    /// Anything else (bytes, dates, JSON…): never used to pin rows.
    Other,
}

/// The parameters of one `execute` call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params<'a> {
    /// `%s`, `?`, `$n` values, in order.
    pub positional: &'a [Param],
    /// `%(name)s` and `:name` values.
    pub named: &'a [(String, Param)],
}

impl<'a> Params<'a> {
    pub fn positional(values: &'a [Param]) -> Self {
        Params {
            positional: values,
            named: &[],
        }
    }

    pub fn named(values: &'a [(String, Param)]) -> Self {
        Params {
            positional: &[],
            named: values,
        }
    }

    pub(crate) fn get_named(&self, name: &str) -> Option<&'a Param> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

/// A literal that a statement compares a column with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Null,
}

/// The comparison class of a [`Value`]: two values that the database could
/// consider equal have equal `Canon`s, so `Canon` is what conflict tests and
/// resource hashes use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Canon {
    /// Numbers (and numeric-looking text, and booleans as 0/1), by the bit
    /// pattern of a normalised `f64` when not an exact integer.
    Int(i64),
    FloatBits(u64),
    Text(String),
    /// `col = NULL` matches no row.
    Null,
}

impl Value {
    /// Builds the value of a numeric literal as written in SQL.
    pub(crate) fn from_number(text: &str) -> Option<Value> {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::Int(i));
        }
        text.parse::<f64>().ok().map(Value::Float)
    }

    pub(crate) fn from_param(p: &Param) -> Option<Value> {
        Some(match p {
            Param::Int(i) => Value::Int(*i),
            Param::Float(f) => Value::Float(*f),
            Param::Text(s) => Value::Text(s.clone()),
            Param::Bool(b) => Value::Bool(*b),
            Param::Null => Value::Null,
            Param::List(_) | Param::Other => return None,
        })
    }

    /// Over-approximates the database's equality: text compares with numbers
    /// numerically when it parses as one, trailing spaces are ignored (blank
    /// padded `char(n)`), and booleans equal 0/1 (MySQL and SQLite).
    pub(crate) fn canon(&self) -> Canon {
        match self {
            Value::Int(i) => Canon::Int(*i),
            Value::Float(f) => canon_float(*f),
            Value::Bool(b) => Canon::Int(i64::from(*b)),
            Value::Null => Canon::Null,
            Value::Text(s) => {
                let t = s.trim_end_matches(' ');
                match t.trim().parse::<f64>() {
                    Ok(f) if !t.trim().is_empty() => canon_float(f),
                    _ => Canon::Text(t.to_string()),
                }
            }
        }
    }

    /// Whether a row whose column equals `self` could also equal `other`.
    pub fn may_equal(&self, other: &Value) -> bool {
        let (a, b) = (self.canon(), other.canon());
        a != Canon::Null && a == b
    }
}

fn canon_float(f: f64) -> Canon {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        // The cast is exact: `f` is an integer well inside i64's range.
        Canon::Int(f as i64)
    } else {
        Canon::FloatBits((f + 0.0).to_bits())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("NULL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_over_approximates_the_database() {
        assert!(Value::Int(1).may_equal(&Value::Float(1.0)));
        assert!(Value::Text("1".into()).may_equal(&Value::Int(1)));
        assert!(Value::Text("alice ".into()).may_equal(&Value::Text("alice".into())));
        assert!(Value::Bool(true).may_equal(&Value::Int(1)));
        assert!(!Value::Text("alice".into()).may_equal(&Value::Text("bob".into())));
        assert!(!Value::Text("alice".into()).may_equal(&Value::Text("Alice".into())));
        assert!(!Value::Int(1).may_equal(&Value::Int(2)));
        assert!(
            !Value::Null.may_equal(&Value::Null),
            "col = NULL matches nothing"
        );
    }

    #[test]
    fn numbers_parse_as_int_or_float() {
        assert_eq!(Value::from_number("42"), Some(Value::Int(42)));
        assert_eq!(Value::from_number("4.5"), Some(Value::Float(4.5)));
        assert_eq!(Value::from_number("x"), None);
    }
}
