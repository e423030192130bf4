//! Finding `# frontrun: <name>` trace markers in Python source text.
//!
//! A marker at the end of a code line tags that line; a marker alone on its
//! own line tags the next line holding code. Either way the tag lands on the
//! *first* line of the logical line (statement) it belongs to, because that is
//! where CPython reports the line event that starts the statement; pausing on a
//! continuation line would stop a thread in the middle of an expression.
//!
//! A name may tag several lines, in different functions: the seed's `txn_a`
//! and `txn_b` both carry `# frontrun: pg_select`, and a step stops its thread
//! at whichever of them it reaches. Within one function (or at module level)
//! a repeated name is almost surely a copy-paste slip, so it is reported.
//!
//! The lexer is small but real: it knows string literals (quotes, triple
//! quotes, prefixes, escapes, f-string replacement fields), comments, bracket
//! nesting and backslash continuations, so a `#` inside a string is never
//! taken for a comment.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The comment prefix that introduces a marker, after `#` and optional spaces.
const MARKER_PREFIX: &str = "frontrun:";

/// The markers of one source file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMarkers {
    /// Tagged line (1-based, first line of a statement) to the names on it.
    by_line: HashMap<u32, Vec<Arc<str>>>,
    /// Name to (first tagged line, its comment line).
    by_name: HashMap<Arc<str>, (u32, u32)>,
    /// (scope, name) to the comment line, to find repeats within a scope.
    by_scope: HashMap<(u32, Arc<str>), u32>,
}

impl FileMarkers {
    /// The marker names tagging `line`, if any.
    pub fn at_line(&self, line: u32) -> Option<&[Arc<str>]> {
        self.by_line.get(&line).map(Vec::as_slice)
    }

    /// The first line tagged by marker `name`.
    pub fn line_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).map(|&(tagged, _)| tagged)
    }

    /// Whether the file holds no marker at all.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Number of distinct markers.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// All marker names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(|n| &**n).collect();
        names.sort_unstable();
        names
    }

    /// The lines tagged by marker `name`, sorted.
    pub fn lines_of(&self, name: &str) -> Vec<u32> {
        let mut lines: Vec<u32> = self
            .by_line
            .iter()
            .filter(|(_, names)| names.iter().any(|n| &**n == name))
            .map(|(&line, _)| line)
            .collect();
        lines.sort_unstable();
        lines
    }

    fn add(
        &mut self,
        scope: u32,
        name: &str,
        tagged: u32,
        comment_line: u32,
    ) -> Result<(), DuplicateMarker> {
        let name: Arc<str> = match self.by_name.get_key_value(name) {
            Some((n, _)) => n.clone(),
            None => Arc::from(name),
        };
        if let Some(&first) = self.by_scope.get(&(scope, name.clone())) {
            return Err(DuplicateMarker {
                name: name.to_string(),
                first_line: first,
                second_line: comment_line,
            });
        }
        self.by_scope.insert((scope, name.clone()), comment_line);
        self.by_name
            .entry(name.clone())
            .or_insert((tagged, comment_line));
        let names = self.by_line.entry(tagged).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
        Ok(())
    }
}

/// The same marker name appears twice in one function (or twice at module
/// level): almost surely a copy-paste slip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateMarker {
    /// The repeated name.
    pub name: String,
    /// Line of the first `# frontrun:` comment with that name.
    pub first_line: u32,
    /// Line of the second one.
    pub second_line: u32,
}

impl fmt::Display for DuplicateMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "marker '{}' is defined twice in the same function, on lines {} and {}; \
             rename one of them (a name may repeat only in different functions)",
            self.name, self.first_line, self.second_line
        )
    }
}

impl std::error::Error for DuplicateMarker {}

/// Scan Python source for trace markers.
pub fn scan(source: &str) -> Result<FileMarkers, DuplicateMarker> {
    // Most files carry no marker: skip the lexer for them.
    if !source.contains(MARKER_PREFIX) {
        return Ok(FileMarkers::default());
    }
    Lexer::new(source).run()
}

/// The name in a comment's text (what follows `#`), if it is a marker.
fn marker_name(comment: &str) -> Option<&str> {
    let rest = comment.trim_start().strip_prefix(MARKER_PREFIX)?;
    let name = rest.split_whitespace().next()?;
    Some(name)
}

struct Lexer<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    /// Current physical line, 1-based.
    line: u32,
    /// Bracket nesting depth: newlines inside brackets continue the statement.
    depth: u32,
    /// First line of the statement being read, once it has code.
    stmt_start: Option<u32>,
    /// Whether the current physical line has code before any comment.
    line_has_code: bool,
    /// Own-line markers waiting for the next code line: (name, comment line).
    pending: Vec<(&'a str, u32)>,
    /// Byte offset where the current physical line starts.
    line_start: usize,
    /// Enclosing `def`s: (indent of the `def` line, scope id).
    scopes: Vec<(u32, u32)>,
    /// Scope of the current statement.
    scope: u32,
    /// Scopes handed out so far; 0 is the module.
    next_scope: u32,
    /// Indent of the current statement.
    stmt_indent: u32,
    /// Still at the first word(s) of the statement (`async` may precede `def`).
    at_stmt_head: bool,
    /// The current statement is a `def`: its body opens a scope.
    stmt_is_def: bool,
    out: FileMarkers,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            src: text.as_bytes(),
            text,
            pos: 0,
            line: 1,
            depth: 0,
            stmt_start: None,
            line_has_code: false,
            pending: Vec::new(),
            line_start: 0,
            scopes: Vec::new(),
            scope: 0,
            next_scope: 1,
            stmt_indent: 0,
            at_stmt_head: false,
            stmt_is_def: false,
            out: FileMarkers::default(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn run(mut self) -> Result<FileMarkers, DuplicateMarker> {
        while let Some(c) = self.peek(0) {
            match c {
                b'\n' | b'\r' => self.newline(),
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'#' => self.comment()?,
                b'\\' if matches!(self.peek(1), Some(b'\n' | b'\r')) => {
                    // The newline is consumed here, so the statement goes on.
                    self.pos += 1;
                    self.newline_chars();
                }
                b'\'' | b'"' => {
                    self.code()?;
                    self.string(false)?;
                }
                b'(' | b'[' | b'{' => {
                    self.code()?;
                    self.depth += 1;
                    self.pos += 1;
                }
                b')' | b']' | b'}' => {
                    self.code()?;
                    self.depth = self.depth.saturating_sub(1);
                    self.pos += 1;
                }
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    self.code()?;
                    self.word()?;
                }
                _ => {
                    self.code()?;
                    self.pos += 1;
                }
            }
        }
        Ok(self.out)
    }

    /// Consume one newline sequence (`\n`, `\r\n` or `\r`) and count it.
    fn newline_chars(&mut self) {
        if self.peek(0) == Some(b'\r') && self.peek(1) == Some(b'\n') {
            self.pos += 2;
        } else {
            self.pos += 1;
        }
        self.line += 1;
        self.line_has_code = false;
        self.line_start = self.pos;
    }

    /// A newline inside a multi-line string: the statement goes on, and the
    /// next physical line starts with code (the string itself).
    fn string_newline(&mut self) {
        self.newline_chars();
        self.line_has_code = true;
    }

    fn newline(&mut self) {
        self.newline_chars();
        if self.depth == 0 {
            self.end_statement();
        }
    }

    fn end_statement(&mut self) {
        if self.stmt_start.take().is_some() && self.stmt_is_def {
            let id = self.next_scope;
            self.next_scope += 1;
            self.scopes.push((self.stmt_indent, id));
        }
        self.stmt_is_def = false;
        self.at_stmt_head = false;
    }

    /// Enter a statement at the current position: find its indent and scope.
    fn begin_statement(&mut self) {
        let mut indent = 0u32;
        for &b in &self.src[self.line_start..self.pos] {
            match b {
                b'\t' => indent = (indent / 8 + 1) * 8,
                b'\x0c' => indent = 0,
                _ => indent += 1,
            }
        }
        while self
            .scopes
            .last()
            .is_some_and(|&(def_indent, _)| def_indent >= indent)
        {
            self.scopes.pop();
        }
        self.scope = self.scopes.last().map_or(0, |&(_, id)| id);
        self.stmt_indent = indent;
        self.at_stmt_head = true;
        self.stmt_start = Some(self.line);
    }

    /// A code token starts at the current position.
    fn code(&mut self) -> Result<(), DuplicateMarker> {
        if self.line_has_code {
            return Ok(());
        }
        self.line_has_code = true;
        if self.stmt_start.is_none() {
            self.begin_statement();
        }
        let start = self.stmt_start.unwrap_or(self.line);
        for (name, comment_line) in std::mem::take(&mut self.pending) {
            self.out.add(self.scope, name, start, comment_line)?;
        }
        Ok(())
    }

    fn comment(&mut self) -> Result<(), DuplicateMarker> {
        let start = self.pos + 1;
        let end = self.src[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(self.src.len(), |i| start + i);
        self.pos = end;
        let text: &'a str = &self.text[start..end];
        if let Some(name) = marker_name(text) {
            if self.line_has_code {
                let tagged = self.stmt_start.unwrap_or(self.line);
                self.out.add(self.scope, name, tagged, self.line)?;
            } else {
                if let Some(&(_, first)) = self.pending.iter().find(|(n, _)| *n == name) {
                    return Err(DuplicateMarker {
                        name: name.to_owned(),
                        first_line: first,
                        second_line: self.line,
                    });
                }
                self.pending.push((name, self.line));
            }
        }
        Ok(())
    }

    /// An identifier or keyword; it may be the prefix of a string literal.
    fn word(&mut self) -> Result<(), DuplicateMarker> {
        let start = self.pos;
        while let Some(c) = self.peek(0) {
            if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
                self.pos += 1;
            } else {
                break;
            }
        }
        let word = &self.src[start..self.pos];
        if self.at_stmt_head {
            self.stmt_is_def = word == b"def";
            // `async def`: the next word still decides.
            self.at_stmt_head = word == b"async";
        }
        if matches!(self.peek(0), Some(b'\'' | b'"'))
            && word.len() <= 2
            && word.iter().all(|c| b"rRbBuUfF".contains(c))
        {
            let fstring = word.iter().any(|c| matches!(c, b'f' | b'F'));
            return self.string(fstring);
        }
        Ok(())
    }

    /// A string literal starting at the opening quote.
    fn string(&mut self, fstring: bool) -> Result<(), DuplicateMarker> {
        let quote = self.src[self.pos];
        let triple = self.peek(1) == Some(quote) && self.peek(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        // Depth of `{` replacement fields inside an f-string.
        let mut fields = 0u32;
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => {
                    // Raw strings keep the backslash, but it still protects
                    // the quote after it from ending the literal.
                    self.pos += 1;
                    if matches!(self.peek(0), Some(b'\n' | b'\r')) {
                        self.string_newline();
                    } else if self.peek(0).is_some() {
                        self.pos += 1;
                    }
                }
                b'\n' | b'\r' => {
                    if !triple && fields == 0 {
                        // Unterminated single-quoted string: stop at the line
                        // end rather than swallowing the rest of the file.
                        return Ok(());
                    }
                    self.string_newline();
                }
                b'{' if fstring => {
                    if fields == 0 && self.peek(1) == Some(b'{') {
                        self.pos += 2;
                    } else {
                        fields += 1;
                        self.pos += 1;
                    }
                }
                b'}' if fstring && fields > 0 => {
                    fields -= 1;
                    self.pos += 1;
                }
                b'\'' | b'"' if fields > 0 => {
                    // A nested literal inside a replacement field (any quote
                    // since Python 3.12).
                    self.string(false)?;
                }
                b'#' if fields > 0 => {
                    // Comments are allowed in multi-line replacement fields.
                    let end = self.src[self.pos..]
                        .iter()
                        .position(|&b| b == b'\n' || b == b'\r')
                        .map_or(self.src.len(), |i| self.pos + i);
                    self.pos = end;
                }
                c if c == quote => {
                    if !triple {
                        self.pos += 1;
                        return Ok(());
                    }
                    if self.peek(1) == Some(quote) && self.peek(2) == Some(quote) {
                        self.pos += 3;
                        return Ok(());
                    }
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(src: &str) -> Vec<(u32, String)> {
        let m = scan(src).expect("no duplicates");
        let mut out: Vec<(u32, String)> = m
            .names()
            .into_iter()
            .map(|n| (m.line_of(n).unwrap(), n.to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn inline_marker_tags_its_line() {
        let src = "x = 1\ny = 2  # frontrun: here\nz = 3\n";
        assert_eq!(tags(src), vec![(2, "here".to_owned())]);
        assert_eq!(scan(src).unwrap().at_line(2).unwrap()[0].as_ref(), "here");
        assert!(scan(src).unwrap().at_line(1).is_none());
    }

    #[test]
    fn own_line_marker_tags_next_code_line() {
        let src = "a = 1\n    # frontrun: m\n\n    # plain comment\n\n    b = 2\n";
        assert_eq!(tags(src), vec![(6, "m".to_owned())]);
    }

    #[test]
    fn marker_without_space_and_with_trailing_text() {
        let src = "f()  #frontrun:   go   (the call)\n";
        assert_eq!(tags(src), vec![(1, "go".to_owned())]);
    }

    #[test]
    fn hash_inside_strings_is_not_a_comment() {
        let src = concat!(
            "a = '# frontrun: s1'\n",
            "b = \"# frontrun: s2\"\n",
            "c = '''\n# frontrun: s3\n'''\n",
            "d = r\"\\\" # frontrun: s4\"\n",
            "e = b'\\' # frontrun: s5'\n",
            "g = f\"{x['#']} # frontrun: s6\"\n",
            "h = 1  # frontrun: real\n",
        );
        assert_eq!(tags(src), vec![(9, "real".to_owned())]);
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let src = "s = 'it\\'s # frontrun: no'\nt = 2  # frontrun: yes\n";
        assert_eq!(tags(src), vec![(2, "yes".to_owned())]);
    }

    #[test]
    fn identifiers_ending_in_prefix_letters_are_not_prefixes() {
        // `bar` ends with `r`, yet `bar"..."` is not valid Python anyway; the
        // word is longer than two letters so no string prefix is assumed,
        // and the quote then starts an ordinary string.
        let src = "x = bar + \"# frontrun: no\"  # frontrun: yes\n";
        assert_eq!(tags(src), vec![(1, "yes".to_owned())]);
    }

    #[test]
    fn multiline_statement_tags_its_first_line() {
        let src = concat!(
            "x = compute(\n",
            "    1,\n",
            "    2)  # frontrun: end\n",
            "y = a + \\\n",
            "    b  # frontrun: cont\n",
        );
        assert_eq!(
            tags(src),
            vec![(1, "end".to_owned()), (4, "cont".to_owned())]
        );
    }

    #[test]
    fn own_line_marker_inside_brackets_tags_the_statement() {
        let src = "call(\n    # frontrun: arg\n    x,\n)\n";
        assert_eq!(tags(src), vec![(1, "arg".to_owned())]);
    }

    #[test]
    fn triple_quoted_string_counts_lines() {
        let src = "s = \"\"\"one\ntwo\nthree\"\"\"\n# frontrun: after\nz = 1\n";
        assert_eq!(tags(src), vec![(5, "after".to_owned())]);
    }

    #[test]
    fn marker_after_a_multiline_string_tags_its_statement() {
        let src = "x = 1\ns = \"\"\"doc\nmore\n\"\"\"  # frontrun: end\ny = 2\n";
        assert_eq!(tags(src), vec![(2, "end".to_owned())]);
        let src = "f(\"a\\\n  b\")  # frontrun: cont\n";
        assert_eq!(tags(src), vec![(1, "cont".to_owned())]);
    }

    #[test]
    fn statement_after_a_backslash_continuation_starts_afresh() {
        let src = "if a or \\\n   b:  # frontrun: cond\n    x = 1  # frontrun: body\n";
        assert_eq!(
            tags(src),
            vec![(1, "cond".to_owned()), (3, "body".to_owned())]
        );
    }

    #[test]
    fn crlf_line_endings() {
        let src = "a = 1\r\n# frontrun: m\r\nb = 2\r\nc = 3  # frontrun: n\r\n";
        assert_eq!(tags(src), vec![(3, "m".to_owned()), (4, "n".to_owned())]);
    }

    #[test]
    fn several_markers_on_one_line() {
        let src = "# frontrun: first\nx = 1  # frontrun: second\n";
        let m = scan(src).unwrap();
        let names: Vec<&str> = m.at_line(2).unwrap().iter().map(|n| &**n).collect();
        assert_eq!(names, vec!["first", "second"]);
    }

    #[test]
    fn duplicate_marker_names_both_lines() {
        let src = "a = 1  # frontrun: m\nb = 2\nc = 3  # frontrun: m\n";
        let err = scan(src).unwrap_err();
        assert_eq!((err.first_line, err.second_line), (1, 3));
        assert_eq!(err.name, "m");
        assert!(err.to_string().contains("lines 1 and 3"));
    }

    #[test]
    fn duplicate_pending_markers_are_reported() {
        let src = "# frontrun: m\n# frontrun: m\nx = 1\n";
        let err = scan(src).unwrap_err();
        assert_eq!((err.first_line, err.second_line), (1, 2));
    }

    #[test]
    fn same_name_in_different_functions_is_allowed() {
        let src = concat!(
            "def txn_a():\n",
            "    cur.execute(q)  # frontrun: pg_select\n",
            "    x = 1\n",
            "\n",
            "async def txn_b():\n",
            "    # frontrun: pg_select\n",
            "    cur.execute(q)\n",
        );
        let m = scan(src).unwrap();
        assert_eq!(m.lines_of("pg_select"), vec![2, 7]);
        assert_eq!(m.line_of("pg_select"), Some(2));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn same_name_twice_in_one_function_is_an_error() {
        let src = concat!(
            "def f():\n",
            "    a = 1  # frontrun: m\n",
            "    def inner():\n",
            "        b = 2  # frontrun: m\n",
            "    c = 3  # frontrun: m\n",
        );
        let err = scan(src).unwrap_err();
        assert_eq!((err.first_line, err.second_line), (2, 5));
    }

    #[test]
    fn methods_are_separate_scopes_and_module_level_resumes() {
        let src = concat!(
            "class C:\n",
            "    def a(self):\n",
            "        x = 1  # frontrun: m\n",
            "    def b(self):\n",
            "        x = 2  # frontrun: m\n",
            "y = 1  # frontrun: m\n",
            "z = 2  # frontrun: m\n",
        );
        let err = scan(src).unwrap_err();
        assert_eq!((err.first_line, err.second_line), (6, 7));
    }

    #[test]
    fn multiline_def_signature_opens_one_scope() {
        let src = concat!(
            "def f(a,\n",
            "      b):\n",
            "    x = 1  # frontrun: m\n",
            "def g():\n",
            "    x = 1  # frontrun: m\n",
        );
        assert_eq!(scan(src).unwrap().lines_of("m"), vec![3, 5]);
    }

    #[test]
    fn trailing_own_line_marker_tags_nothing() {
        let src = "x = 1\n# frontrun: dangling\n";
        assert!(scan(src).unwrap().is_empty());
    }

    #[test]
    fn not_a_marker() {
        let src = "x = 1  # frontrun is great\ny = 2  # frontrun:\n";
        assert!(scan(src).unwrap().is_empty());
    }

    #[test]
    fn unterminated_string_stops_at_line_end() {
        let src = "x = 'oops\ny = 2  # frontrun: ok\n";
        assert_eq!(tags(src), vec![(2, "ok".to_owned())]);
    }

    #[test]
    fn fstring_with_escaped_braces_and_nested_quotes() {
        let src = "s = f'{{# frontrun: no}}' + f\"{d[\"k\"]}\"  # frontrun: yes\n";
        assert_eq!(tags(src), vec![(1, "yes".to_owned())]);
    }

    #[test]
    fn non_ascii_text_is_handled() {
        let src = "s = 'héllo # frontrun: no'\nπ = 3  # frontrun: pi\n";
        assert_eq!(tags(src), vec![(2, "pi".to_owned())]);
    }
}
