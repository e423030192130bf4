//! A quote-aware pre-pass over the raw SQL text, before `sqlparser` sees it.
//!
//! It does the few things the parser cannot: split a string into statements
//! (so one unparseable statement does not hide the others), turn driver
//! placeholders (`%s`, `%(name)s`, `?`) into numbered `$n` slots the parser
//! accepts, undo `%%` escapes, and strip the `NO KEY` / `KEY` words of
//! PostgreSQL's weaker row-lock strengths (which sqlparser 0.58 rejects),
//! remembering which strengths were asked for.

use crate::footprint::RowLockMode;
use crate::Dialect;

/// Where the value of one `$n` slot of the rewritten text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParamSlot {
    /// Index into the positional parameters.
    Positional(usize),
    /// Key into the named parameters (`%(name)s`, `:name`).
    Named(String),
}

/// One statement of the input, rewritten for the parser.
#[derive(Clone, Debug, Default)]
pub(crate) struct Piece {
    /// The statement text with placeholders turned into `$n`.
    pub text: String,
    /// `slots[n - 1]` says where `$n` gets its value. A `$n` beyond this list
    /// was written by the user as a native PostgreSQL placeholder.
    pub slots: Vec<ParamSlot>,
    /// The row-lock strengths written in the text, in order of appearance.
    pub lock_strengths: Vec<RowLockMode>,
    /// Upper-cased first word (`LOCK`, `SELECT`…), empty when there is none.
    pub first_word: String,
    /// The `n` of slots written as `IN %s`: psycopg expands a tuple there,
    /// so the slot holds a list and was parenthesised for the parser.
    pub list_slots: Vec<usize>,
}

#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

/// Splits `sql` into rewritten statements; empty statements are dropped.
pub(crate) fn split(sql: &str, dialect: Dialect) -> Vec<Piece> {
    let bytes = sql.as_bytes();
    let question_marks = matches!(dialect, Dialect::Sqlite | Dialect::MySql);
    let backslash_strings = matches!(dialect, Dialect::MySql);
    let mut pieces = Vec::new();
    let mut cur = Builder::default();
    let mut i = 0;
    // Start of the text not yet copied into `cur.text`.
    let mut copied = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => {
                let escapes = backslash_strings || is_escape_prefix(bytes, i);
                i = skip_quoted(bytes, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(bytes, i, b'"', backslash_strings),
            b'`' if matches!(dialect, Dialect::MySql | Dialect::Sqlite) => {
                i = skip_quoted(bytes, i, b'`', false)
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' if matches!(dialect, Dialect::MySql) => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' if matches!(dialect, Dialect::PostgreSql) => {
                i = match dollar_tag(bytes, i) {
                    Some(tag_end) => skip_dollar_quoted(bytes, i, tag_end),
                    None => i + 1,
                };
            }
            b'%' => {
                if bytes.get(i + 1) == Some(&b'%') {
                    cur.text.push_str(&sql[copied..i]);
                    cur.text.push('%');
                    i += 2;
                    copied = i;
                } else if bytes.get(i + 1) == Some(&b's') {
                    cur.text.push_str(&sql[copied..i]);
                    let n = cur.positional;
                    cur.positional += 1;
                    cur.push_pyformat_slot(ParamSlot::Positional(n));
                    i += 2;
                    copied = i;
                } else if bytes.get(i + 1) == Some(&b'(') {
                    match named_pyformat(sql, i) {
                        Some((name, end)) => {
                            cur.text.push_str(&sql[copied..i]);
                            cur.push_pyformat_slot(ParamSlot::Named(name.to_string()));
                            i = end;
                            copied = i;
                        }
                        None => i += 1,
                    }
                } else {
                    i += 1;
                }
            }
            b'?' if question_marks => {
                cur.text.push_str(&sql[copied..i]);
                // SQLite's `?NNN` names parameter NNN (1-based).
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let explicit = sql[i + 1..i + 1 + digits]
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0);
                let n = match explicit {
                    Some(n) => n - 1,
                    None => {
                        let n = cur.positional;
                        cur.positional += 1;
                        n
                    }
                };
                cur.push_slot(ParamSlot::Positional(n));
                i += 1 + digits;
                copied = i;
            }
            b':' if matches!(dialect, Dialect::Sqlite)
                && bytes.get(i + 1).is_some_and(|b| is_word_start(*b))
                && (i == 0 || bytes[i - 1] != b':') =>
            {
                let end = word_end(bytes, i + 1);
                cur.text.push_str(&sql[copied..i]);
                cur.push_slot(ParamSlot::Named(sql[i + 1..end].to_string()));
                i = end;
                copied = i;
            }
            b';' => {
                cur.text.push_str(&sql[copied..i]);
                i += 1;
                copied = i;
                // psycopg numbers `%s` across the whole string.
                let positional = cur.positional;
                pieces.extend(std::mem::take(&mut cur).finish());
                cur.positional = positional;
            }
            c if is_word_start(c) => {
                let end = word_end(bytes, i);
                // Offsets into `cur.text` once the pending span is copied.
                let start_out = cur.text.len() + (i - copied);
                cur.words.push(Word {
                    start: start_out,
                    end: start_out + (end - i),
                });
                i = end;
            }
            _ => i += 1,
        }
    }
    cur.text.push_str(&sql[copied..]);
    pieces.extend(cur.finish());
    pieces
}

#[derive(Default)]
struct Builder {
    text: String,
    slots: Vec<ParamSlot>,
    positional: usize,
    words: Vec<Word>,
    list_slots: Vec<usize>,
}

impl Builder {
    fn push_slot(&mut self, slot: ParamSlot) {
        self.slots.push(slot);
        // A leading space keeps `x=%s` from becoming one token with the slot.
        self.text.push_str(&format!(" ${} ", self.slots.len()));
    }

    /// `IN %s` becomes `IN ($n)`, remembered as a list slot.
    fn push_pyformat_slot(&mut self, slot: ParamSlot) {
        let after_in = self.words.last().is_some_and(|w| {
            self.text[w.start..w.end].eq_ignore_ascii_case("IN")
                && self.text[w.end..].trim().is_empty()
        });
        if !after_in {
            return self.push_slot(slot);
        }
        self.slots.push(slot);
        self.list_slots.push(self.slots.len());
        self.text.push_str(&format!(" (${}) ", self.slots.len()));
    }

    fn finish(mut self) -> Option<Piece> {
        if self.text.trim().is_empty() {
            return None;
        }
        let lock_strengths = self.rewrite_lock_strengths();
        let first_word = self
            .words
            .first()
            .map(|w| self.text[w.start..w.end].to_ascii_uppercase())
            .unwrap_or_default();
        Some(Piece {
            text: self.text,
            slots: self.slots,
            lock_strengths,
            first_word,
            list_slots: self.list_slots,
        })
    }

    /// Finds `FOR [NO KEY] UPDATE` / `FOR [KEY] SHARE` and blanks the words
    /// the parser does not know, so it sees plain `FOR UPDATE` / `FOR SHARE`.
    fn rewrite_lock_strengths(&mut self) -> Vec<RowLockMode> {
        let upper: Vec<String> = self
            .words
            .iter()
            .map(|w| self.text[w.start..w.end].to_ascii_uppercase())
            .collect();
        let mut found = Vec::new();
        let mut blank = Vec::new();
        let adjacent = |a: &Word, b: &Word, text: &str| text[a.end..b.start].trim().is_empty();
        let mut k = 0;
        while k < upper.len() {
            if upper[k] != "FOR" {
                k += 1;
                continue;
            }
            let w = &self.words;
            let next = |j: usize| upper.get(j).map(String::as_str);
            let adj = |j: usize| j < w.len() && adjacent(&w[j - 1], &w[j], &self.text);
            match (next(k + 1), next(k + 2), next(k + 3)) {
                (Some("UPDATE"), _, _) if adj(k + 1) => found.push(RowLockMode::Update),
                (Some("SHARE"), _, _) if adj(k + 1) => found.push(RowLockMode::Share),
                (Some("NO"), Some("KEY"), Some("UPDATE"))
                    if adj(k + 1) && adj(k + 2) && adj(k + 3) =>
                {
                    found.push(RowLockMode::NoKeyUpdate);
                    blank.extend([w[k + 1], w[k + 2]]);
                }
                (Some("KEY"), Some("SHARE"), _) if adj(k + 1) && adj(k + 2) => {
                    found.push(RowLockMode::KeyShare);
                    blank.push(w[k + 1]);
                }
                _ => {}
            }
            k += 1;
        }
        for w in blank {
            // The blanked words are ASCII, so byte-wise replacement keeps UTF-8 valid.
            let spaces = " ".repeat(w.end - w.start);
            self.text.replace_range(w.start..w.end, &spaces);
        }
        found
    }
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric()
            || bytes[i] == b'_'
            || bytes[i] == b'$'
            || bytes[i] >= 0x80)
    {
        i += 1;
    }
    i
}

/// `E'...'` strings take backslash escapes in PostgreSQL.
fn is_escape_prefix(bytes: &[u8], quote: usize) -> bool {
    quote > 0
        && matches!(bytes[quote - 1], b'e' | b'E')
        && (quote < 2 || !(bytes[quote - 2].is_ascii_alphanumeric() || bytes[quote - 2] == b'_'))
}

/// Index just past the closing quote (doubled quotes stay inside).
fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if backslash && c == b'\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| start + p + 1)
}

/// PostgreSQL block comments nest.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// If a dollar-quote tag (`$$` or `$tag$`) opens at `start`, the index just
/// past it. `$1` is a placeholder, not a tag.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        return None;
    }
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    (bytes.get(i) == Some(&b'$')).then_some(i + 1)
}

fn skip_dollar_quoted(bytes: &[u8], start: usize, tag_end: usize) -> usize {
    let tag = &bytes[start..tag_end];
    let body = &bytes[tag_end..];
    body.windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |p| tag_end + p + tag.len())
}

/// Parses `%(name)s` at `start`; returns the name and the index past it.
fn named_pyformat(sql: &str, start: usize) -> Option<(&str, usize)> {
    let rest = &sql[start + 2..];
    let close = rest.find(')')?;
    let name = &rest[..close];
    if name.is_empty() || name.contains(['\'', '"', '(', '\n']) {
        return None;
    }
    (rest.as_bytes().get(close + 1) == Some(&b's')).then_some((name, start + 2 + close + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str, d: Dialect) -> Piece {
        let mut p = split(sql, d);
        assert_eq!(p.len(), 1, "{sql:?} should be one statement: {p:?}");
        p.remove(0)
    }

    #[test]
    fn pyformat_placeholders_become_numbered_slots() {
        let p = one("UPDATE t SET a=%s WHERE b=%s", Dialect::PostgreSql);
        assert_eq!(p.text, "UPDATE t SET a= $1  WHERE b= $2 ");
        assert_eq!(
            p.slots,
            vec![ParamSlot::Positional(0), ParamSlot::Positional(1)]
        );
    }

    #[test]
    fn quotes_comments_and_percent_escapes_are_respected() {
        let p = one(
            "SELECT '%s', \"%s\", $$ %s ; $$ /* %s ; */ -- %s ;\n FROM t WHERE a LIKE 'x%%' AND b = %s AND c = 5 %% 2",
            Dialect::PostgreSql,
        );
        assert_eq!(p.slots, vec![ParamSlot::Positional(0)]);
        assert!(p.text.contains("'%s'") && p.text.contains("$$ %s ; $$"));
        assert!(
            p.text.contains("'x%%'"),
            "%% inside quotes is kept: {}",
            p.text
        );
        assert!(
            p.text.ends_with("5 % 2"),
            "%% outside quotes is unescaped: {}",
            p.text
        );
    }

    #[test]
    fn named_pyformat_and_question_marks() {
        let p = one(
            "SELECT * FROM t WHERE a = %(who)s AND b = %(n)s",
            Dialect::PostgreSql,
        );
        assert_eq!(
            p.slots,
            vec![ParamSlot::Named("who".into()), ParamSlot::Named("n".into())]
        );
        let q = one("SELECT * FROM t WHERE a = ? AND b = '?'", Dialect::Sqlite);
        assert_eq!(q.slots, vec![ParamSlot::Positional(0)]);
        // `?` is a jsonb operator in PostgreSQL, never a placeholder there.
        let r = one("SELECT * FROM t WHERE j ? 'k'", Dialect::PostgreSql);
        assert!(r.slots.is_empty());
        let n = one("SELECT * FROM t WHERE a = ?2 AND b = ?1", Dialect::Sqlite);
        assert_eq!(
            n.slots,
            vec![ParamSlot::Positional(1), ParamSlot::Positional(0)]
        );
        let s = one("SELECT * FROM t WHERE a = :who", Dialect::Sqlite);
        assert_eq!(s.slots, vec![ParamSlot::Named("who".into())]);
    }

    #[test]
    fn in_pyformat_is_a_list_slot() {
        let p = one(
            "SELECT * FROM t WHERE a IN %s AND b = %s",
            Dialect::PostgreSql,
        );
        assert_eq!(p.text, "SELECT * FROM t WHERE a IN  ($1)  AND b =  $2 ");
        assert_eq!(p.list_slots, vec![1]);
    }

    #[test]
    fn escape_strings_dollar_quotes_and_comments_hide_placeholders() {
        let p = one(
            "SELECT E'it\\'s %s', $fn$ ' %s $fn$, /* /* %s */ ; */ x FROM t WHERE a = %s",
            Dialect::PostgreSql,
        );
        assert_eq!(p.slots, vec![ParamSlot::Positional(0)]);
        let m = one(
            "SELECT 'a\\' %s', `x%s` FROM t # %s ;\n WHERE a = %s",
            Dialect::MySql,
        );
        assert_eq!(m.slots, vec![ParamSlot::Positional(0)]);
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let p = split("BEGIN; SELECT ';' ; ;COMMIT", Dialect::PostgreSql);
        let words: Vec<_> = p.iter().map(|x| x.first_word.as_str()).collect();
        assert_eq!(words, ["BEGIN", "SELECT", "COMMIT"]);
    }

    #[test]
    fn weak_lock_strengths_are_recorded_and_blanked() {
        let p = one(
            "SELECT * FROM t FOR NO KEY UPDATE NOWAIT",
            Dialect::PostgreSql,
        );
        assert_eq!(p.lock_strengths, vec![RowLockMode::NoKeyUpdate]);
        assert!(!p.text.contains("KEY") && p.text.contains("FOR") && p.text.contains("UPDATE"));
        let q = one("select * from t for key share", Dialect::PostgreSql);
        assert_eq!(q.lock_strengths, vec![RowLockMode::KeyShare]);
        assert!(!q.text.contains("key"));
        let r = one(
            "SELECT 'for key share' FROM t FOR UPDATE",
            Dialect::PostgreSql,
        );
        assert_eq!(r.lock_strengths, vec![RowLockMode::Update]);
        assert!(r.text.contains("'for key share'"));
    }
}
