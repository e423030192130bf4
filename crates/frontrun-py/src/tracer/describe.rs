//! Human-readable accesses and source locations, for explanations.

use std::sync::{LazyLock, Mutex};

use frontrun_engine::event::{Access, AccessKind, Key};
use pyo3::prelude::*;

use super::key_text::{self, KeyText};
use super::registry;

/// `read Counter.value`, `write dict['k']`, `write list[*]`, `acquire Lock`.
pub fn describe_access(access: &Access) -> String {
    let kind = match access.kind {
        AccessKind::Read => "read",
        AccessKind::Write => "write",
        AccessKind::Acquire => "acquire",
        AccessKind::Release => "release",
        AccessKind::Spawn => return format!("start thread {}", access.obj),
        AccessKind::Join => return format!("join thread {}", access.obj),
    };
    let owner =
        registry::type_name(access.obj).unwrap_or_else(|| format!("object#{:x}", access.obj));
    let key = match access.key {
        Key::Any if matches!(access.kind, AccessKind::Acquire | AccessKind::Release) => {
            String::new()
        }
        Key::Any => "[*]".into(),
        Key::Exact(h) => match key_text::lookup(h) {
            Some(KeyText::Name(n)) => format!(".{n}"),
            Some(KeyText::Item(r)) => format!("[{r}]"),
            None => format!("[#{h:016x}]"),
        },
    };
    format!("{kind} {owner}{key}")
}

/// Where a site is in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteLocation {
    pub file: String,
    pub line: u32,
    pub function: String,
}

/// (code object, byte offset) per site; site ids are indices + 1.
type SiteTable = Vec<(Py<PyAny>, u32)>;
static SITES: LazyLock<Mutex<SiteTable>> = LazyLock::new(Mutex::default);

/// A new site id for `offset` in `code` (callers cache it per code unit).
pub fn new_site(code: Py<PyAny>, offset: u32) -> u64 {
    let mut s = SITES.lock().unwrap_or_else(|e| e.into_inner());
    s.push((code, offset));
    s.len() as u64
}

/// File, line and function of a site produced by the tracer.
pub fn site_location(py: Python<'_>, site: u64) -> Option<SiteLocation> {
    let idx = usize::try_from(site).ok()?.checked_sub(1)?;
    let (code, offset) = {
        let s = SITES.lock().unwrap_or_else(|e| e.into_inner());
        let (c, o) = s.get(idx)?;
        (c.clone_ref(py), *o)
    };
    let code = code.bind(py);
    // `co_lines()` yields (start, end, line) ranges of byte offsets.
    let mut line = 0u32;
    for entry in code
        .call_method0("co_lines")
        .ok()?
        .try_iter()
        .ok()?
        .flatten()
    {
        let (start, end, l): (u32, u32, Option<u32>) = entry.extract().ok()?;
        if (start..end).contains(&offset) {
            line = l.unwrap_or(0);
            break;
        }
    }
    let function_attr = super::interp::FUNCTION_NAME_ATTR;
    Some(SiteLocation {
        file: code.getattr("co_filename").ok()?.extract().ok()?,
        line,
        function: code.getattr(function_attr).ok()?.extract().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::key_text::{key_text, remember_key};

    #[test]
    fn describes_names_items_and_wholes() {
        remember_key(11, || Some(KeyText::Name("value".into())));
        remember_key(12, || Some(KeyText::Item("'k'".into())));
        remember_key(11, || Some(KeyText::Name("ignored".into())));
        let read = Access::read(0xab, Key::Exact(11));
        assert_eq!(describe_access(&read), "read object#ab.value");
        assert_eq!(
            describe_access(&Access::write(0xab, Key::Exact(12))),
            "write object#ab['k']"
        );
        assert_eq!(
            describe_access(&Access::write(0xab, Key::Any)),
            "write object#ab[*]"
        );
        assert_eq!(key_text(Key::Exact(12)), "'k'");
        assert_eq!(key_text(Key::Any), "*");
    }
}
