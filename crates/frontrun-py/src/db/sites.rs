//! Statement sites: what an explanation shows for a database event, e.g.
//! `Txn A | SELECT balance FROM accounts WHERE name='alice' → 1000`.
//!
//! Event sites are opaque `u64`s to the engine. Database sites have the top
//! bit set, so a driver resolving sites can tell them from tracer sites and
//! call [`describe`].

use std::sync::Mutex;

use pyo3::prelude::*;

/// Bit that marks a site as a database statement.
pub const DB_SITE_TAG: u64 = 1 << 63;

struct Record {
    label: String,
    sql: String,
    params: Option<String>,
    result: Option<String>,
    /// The footprint in words, naming the data for bug summaries.
    subject: Option<String>,
}

/// Sites of the current execution; cleared by `db_sites_clear` when a new
/// execution starts (explanations are built before that).
static SITES: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn sites() -> std::sync::MutexGuard<'static, Vec<Record>> {
    // Poisoning only means a panic elsewhere; the vector is still valid.
    SITES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Statements longer than this are cut in explanations.
const MAX_SQL: usize = 160;

fn one_line(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > MAX_SQL {
        let cut: String = s.chars().take(MAX_SQL - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// Register a statement about to run: `label` names its transaction.
#[pyfunction]
#[pyo3(signature = (label, sql, params = None, subject = None))]
pub fn db_site(
    label: String,
    sql: &str,
    params: Option<String>,
    subject: Option<String>,
) -> PyResult<u64> {
    crate::ffi_guard::guard(|| {
        Ok({
            let mut s = sites();
            s.push(Record {
                label,
                sql: one_line(sql),
                params,
                result: None,
                subject,
            });
            DB_SITE_TAG | (s.len() as u64 - 1)
        })
    })
}

/// Attach what the statement returned (rows fetched, rows affected, error).
#[pyfunction]
pub fn db_site_result(site: u64, text: String) -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        if site & DB_SITE_TAG == 0 {
            return Ok(());
        }
        let idx = (site & !DB_SITE_TAG) as usize;
        if let Some(r) = sites().get_mut(idx) {
            match &mut r.result {
                Some(prev) => {
                    prev.push_str(", ");
                    prev.push_str(&text);
                }
                None => r.result = Some(text),
            }
        };
        Ok(())
    })
}

/// The explanation line of `site`, or `None` for a non-database site.
pub fn describe(site: u64) -> Option<String> {
    if site & DB_SITE_TAG == 0 {
        return None;
    }
    let idx = (site & !DB_SITE_TAG) as usize;
    let s = sites();
    let r = s.get(idx)?;
    let mut out = format!("{} | {}", r.label, r.sql);
    if let Some(p) = &r.params {
        out.push_str("  -- ");
        out.push_str(p);
    }
    if let Some(res) = &r.result {
        out.push_str(" → ");
        out.push_str(res);
    }
    Some(out)
}

/// The rows `site`'s statement touched, in words (`read counts[*]`).
pub fn subject(site: u64) -> Option<String> {
    if site & DB_SITE_TAG == 0 {
        return None;
    }
    sites().get((site & !DB_SITE_TAG) as usize)?.subject.clone()
}

/// Python face of [`describe`].
#[pyfunction]
pub fn db_site_text(site: u64) -> PyResult<Option<String>> {
    crate::ffi_guard::guard(|| Ok(describe(site)))
}

/// Forget every site (at the start of an execution).
#[pyfunction]
pub fn db_sites_clear() -> PyResult<()> {
    crate::ffi_guard::guard(|| {
        sites().clear();
        Ok(())
    })
}
