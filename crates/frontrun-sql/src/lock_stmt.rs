//! PostgreSQL's `LOCK TABLE`, which sqlparser 0.58 does not parse.

use sqlparser::ast::Ident;

use crate::footprint::{TableLock, TableLockMode};
use crate::Dialect;

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
