//! No Rust panic crosses into Python as PyO3's `PanicException` (a
//! `BaseException` that test code does not expect and `except Exception`
//! does not catch): entries run under [`guard`], which turns a panic into
//! the `RuntimeError` of [`internal_error`].
//!
//! The two `_panic_*` functions exist for the reliability tests: they
//! provoke a panic at an entry and in the line tracer, to show a normal
//! exception comes out and the interpreter does not abort.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// Run `f`, turning a panic into a normal Python exception.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(internal_error(&panic)))
}

/// The exception a caught panic becomes: a plain `RuntimeError` naming it.
pub fn internal_error(panic: &Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    pyo3::exceptions::PyRuntimeError::new_err(format!(
        "frontrun internal error: {what}; please report it with the test that triggered it"
    ))
}

/// Set by [`_panic_on_next_traced_line`]; the line tracer panics once at
/// the next line event of a traced thread when it is set.
static PANIC_ON_NEXT_LINE: AtomicBool = AtomicBool::new(false);

/// Whether the line tracer must panic now (test hook; clears the request).
/// One relaxed load per line event when not set.
pub fn take_line_panic_request() -> bool {
    PANIC_ON_NEXT_LINE.load(Ordering::Relaxed) && PANIC_ON_NEXT_LINE.swap(false, Ordering::Relaxed)
}

/// Test hook: the next line event of a traced thread panics inside the line
/// tracer.
#[pyfunction]
pub fn _panic_on_next_traced_line(on: bool) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        PANIC_ON_NEXT_LINE.store(on, Ordering::Relaxed);
        Ok(())
    })
}

/// Test hook: an entry whose body panics.
#[pyfunction]
pub fn _panic_in_entry() -> PyResult<()> {
    crate::ffi_guard::guard(|| guard(|| panic!("test-only panic at an FFI entry")))
}

/// Register the test hooks.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_on_next_traced_line, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_entry, m)?)?;
    Ok(())
}

/// Every Python entry of this crate must start with `ffi_guard::guard(`:
/// a scan of the sources, so a new entry without it fails `cargo test`.
#[cfg(test)]
mod entry_scan {
    use std::path::Path;

    /// The source with comments and the contents of string and char
    /// literals blanked, so braces inside them do not count.
    fn code_only(src: &str) -> String {
        let b = src.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"//") {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if b[i..].starts_with(b"/*") {
                let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                out.extend(std::iter::repeat_n(b' ', end - i));
                i = end;
            } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let closing = format!("\"{}", "#".repeat(hashes));
                let start = i + 1 + hashes + 1;
                let end = src[start..]
                    .find(&closing)
                    .map_or(b.len(), |e| start + e + closing.len());
                out.extend_from_slice(b"\"\"");
                i = end;
            } else if b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(b"\"\"");
                i += 1;
            } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
                out.extend_from_slice(b"' '");
                i += 3;
            } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
                let end = src[i + 2..].find('\'').map_or(b.len(), |e| i + 2 + e + 1);
                out.extend_from_slice(b"' '");
                i = end;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("ascii blanks keep utf-8")
    }

    /// Index just past the `}` matching the `{` at `open`.
    fn block_end(code: &str, open: usize) -> usize {
        let mut depth = 0usize;
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return open + k + 1;
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced braces");
    }

    /// `(name, body)` of the function whose `fn` keyword is at or after `from`.
    fn function_at(code: &str, from: usize) -> (String, &str, usize) {
        let kw = from
            + code[from..]
                .find("fn ")
                .expect("an entry attribute precedes a fn");
        let name: String = code[kw + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let open = kw + code[kw..].find('{').expect("fn has a body");
        let end = block_end(code, open);
        (name, &code[open + 1..end - 1], end)
    }

    fn guarded(body: &str) -> bool {
        let body = body.trim_start();
        ["crate::ffi_guard::guard(", "ffi_guard::guard("]
            .iter()
            .any(|p| body.starts_with(p))
    }

    /// Entries (`file: fn`) whose body does not start with the guard.
    fn unguarded_in(file: &str, src: &str) -> Vec<String> {
        let code = code_only(src);
        let mut bad = Vec::new();
        let mut at = 0;
        while let Some(off) = code[at..].find("#[pyfunction]") {
            let (name, body, end) = function_at(&code, at + off);
            if !guarded(body) {
                bad.push(format!("{file}: {name}"));
            }
            at = end;
        }
        let mut at = 0;
        while let Some(off) = code[at..].find("#[pymethods]") {
            let start = at + off;
            let open = start + code[start..].find('{').expect("impl block");
            let end = block_end(&code, open);
            let mut k = open + 1;
            while let Some(f) = code[k..end].find("fn ") {
                let (name, body, fn_end) = function_at(&code, k + f);
                if !guarded(body) {
                    bad.push(format!("{file}: {name}"));
                }
                k = fn_end;
            }
            at = end;
        }
        bad
    }

    fn walk(dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                out.extend(unguarded_in(&p.display().to_string(), &src));
            }
        }
    }

    #[test]
    fn every_python_entry_is_guarded() {
        let mut bad = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut bad);
        assert!(
            bad.is_empty(),
            "entries without ffi_guard::guard:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn the_scan_sees_entries_and_ignores_literals() {
        let src = r##"
            #[pyfunction]
            fn a() -> PyResult<()> { crate::ffi_guard::guard(|| Ok(())) }
            #[pyfunction]
            fn b() -> String { format!("{{ }} {}", '{') }
            #[pymethods]
            impl X {
                #[new]
                fn new() -> PyResult<Self> { ffi_guard::guard(|| Ok(X)) }
                fn c(&self) -> bool { let s = r#"}"#; true }
            }
        "##;
        assert_eq!(unguarded_in("f", src), ["f: b", "f: c"]);
    }
}
