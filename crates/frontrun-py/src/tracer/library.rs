//! Objects of untraced (trusted) packages that the threads share.
//!
//! The code of SQLAlchemy, Django, psycopg and asgiref is not traced (see
//! `code.rs`), so whatever the threads share *inside* one of their objects
//! is invisible: a race there would be missed and a pass would be a false
//! proof. A pass is therefore a proof only if every object of those packages
//! reachable from the threads' shared state is one whose sharing frontrun
//! accounts for:
//! - configuration built once and only read afterwards: SQLAlchemy schema,
//!   expression and mapper objects, Django model metadata, fields and
//!   managers, settings and the app registry (the settling run builds what
//!   they build lazily);
//! - objects made to be shared whose shared state frontrun brings under the
//!   scheduler: an `Engine` and its pool (internally locked; every
//!   connection checked out is replaced by an instrumented one, whose
//!   statements go to the database model), session factories, Django's
//!   connection handler and `asgiref` thread-locals (per-thread state, and
//!   every explored thread starts with fresh thread-locals);
//! - the drivers' connections and cursors: their statements go to the
//!   database model.
//!
//! Any other such object (a `Session` or `Connection` used by two threads,
//! a `QuerySet` with its result cache, a library cache…) is recorded here,
//! and the exploration reports a pass as inconclusive, naming it.
//! `FRONTRUN_TRACE_PACKAGES=1` traces the packages instead (nothing is then
//! recorded).
//!
//! The classification is by the object's type, cached per type.

use std::sync::{LazyLock, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyType;

use super::code;
use super::keys::FastMap;

/// Qualified type-name prefixes (`module.QualName`) of library objects
/// whose sharing is accounted for (see the module docs).
const ACCOUNTED: &[&str] = &[
    "sqlalchemy.engine.base.Engine",
    "sqlalchemy.engine.url.",
    "sqlalchemy.pool.",
    "sqlalchemy.event.",
    "sqlalchemy.sql.",
    "sqlalchemy.orm.session.sessionmaker",
    "sqlalchemy.orm.scoping.scoped_session",
    "sqlalchemy.orm.mapper.",
    "sqlalchemy.orm.attributes.",
    "sqlalchemy.orm.decl_api.",
    "sqlalchemy.orm.instrumentation.",
    "sqlalchemy.orm.properties.",
    "sqlalchemy.orm.relationships.",
    "sqlalchemy.orm.descriptor_props.",
    "sqlalchemy.orm.interfaces.",
    "sqlalchemy.orm.base.",
    "django.db.models.",
    "django.db.utils.ConnectionHandler",
    "django.db.utils.ConnectionRouter",
    "django.utils.connection.",
    "django.conf.",
    "django.apps.",
    "asgiref.local.",
    "psycopg.",
    "psycopg2.",
    "psycopg_c.",
    "psycopg_binary.",
];

/// Checked before [`ACCOUNTED`]: shared mutable state under an accounted
/// prefix.
const NOT_ACCOUNTED: &[&str] = &[
    "django.db.models.query.QuerySet",
    "django.db.models.query.RawQuerySet",
];

/// How an object takes part, by its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The user's code or a traced package.
    Traced,
    /// An untraced package; its sharing is accounted for.
    Accounted,
    /// An untraced package; sharing it may hide a race. The qualified type.
    Hidden(String),
}

struct LibraryCache {
    /// Keeps the types alive so their addresses are not reused.
    by_type: FastMap<usize, (Py<PyAny>, Owner)>,
    /// First hidden object shared in this exploration, and how many.
    first: Option<String>,
    count: u64,
}

static CACHE: LazyLock<Mutex<LibraryCache>> = LazyLock::new(|| {
    Mutex::new(LibraryCache {
        by_type: FastMap::default(),
        first: None,
        count: 0,
    })
});

fn cache() -> std::sync::MutexGuard<'static, LibraryCache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `module.QualName` of `t`.
fn qualified(t: &Bound<'_, PyType>) -> Option<String> {
    let module: String = t.getattr("__module__").ok()?.extract().ok()?;
    let qual: String = t.getattr("__qualname__").ok()?.extract().ok()?;
    Some(format!("{module}.{qual}"))
}

fn classify_name(name: &str, untraced: &[String]) -> Owner {
    let top = name.split('.').next().unwrap_or("");
    if !untraced.iter().any(|p| p == top) {
        return Owner::Traced;
    }
    if NOT_ACCOUNTED.iter().any(|p| name.starts_with(p)) {
        return Owner::Hidden(name.to_string());
    }
    if ACCOUNTED.iter().any(|p| name.starts_with(p)) {
        Owner::Accounted
    } else {
        Owner::Hidden(name.to_string())
    }
}

/// Who owns `obj`. A class of an untraced package is accounted for (its
/// class attributes are configuration); a user's class (even with a
/// library metaclass) is traced.
pub fn owner(obj: &Bound<'_, PyAny>) -> Owner {
    let untraced = match code::statics(obj.py()) {
        Ok(st) if !st.untraced_packages.is_empty() => &st.untraced_packages,
        _ => return Owner::Traced,
    };
    let (t, is_class) = match obj.downcast::<PyType>() {
        Ok(cls) => (cls.clone(), true),
        Err(_) => (obj.get_type(), false),
    };
    let key = t.as_ptr() as usize;
    if !is_class {
        if let Some((_, o)) = cache().by_type.get(&key) {
            return o.clone();
        }
    }
    let o = match qualified(&t) {
        Some(name) => match classify_name(&name, untraced) {
            Owner::Hidden(_) if is_class => Owner::Accounted,
            o => o,
        },
        None => Owner::Traced,
    };
    if !is_class {
        cache()
            .by_type
            .insert(key, (t.into_any().unbind(), o.clone()));
    }
    o
}

/// Record that a hidden library object is shared by the threads.
pub fn note_shared(name: &str) {
    let mut c = cache();
    c.count += 1;
    if c.first.is_none() {
        c.first = Some(name.to_string());
    }
}

/// Forget what the last exploration recorded.
pub fn reset() {
    let mut c = cache();
    c.first = None;
    c.count = 0;
}

/// The first hidden library object shared since [`reset`], and how many
/// registrations of such objects there were.
pub fn shared() -> Option<(String, u64)> {
    let c = cache();
    c.first.clone().map(|f| (f, c.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_qualified_name() {
        let un = vec!["sqlalchemy".to_string(), "django".to_string()];
        assert_eq!(classify_name("app.Account", &un), Owner::Traced);
        assert_eq!(classify_name("cachetools.LRUCache", &un), Owner::Traced);
        assert_eq!(
            classify_name("sqlalchemy.engine.base.Engine", &un),
            Owner::Accounted
        );
        assert_eq!(
            classify_name("sqlalchemy.orm.session.Session", &un),
            Owner::Hidden("sqlalchemy.orm.session.Session".into())
        );
        assert_eq!(
            classify_name("django.db.models.query.QuerySet", &un),
            Owner::Hidden("django.db.models.query.QuerySet".into())
        );
        assert_eq!(
            classify_name("django.db.models.manager.Manager", &un),
            Owner::Accounted
        );
        // Traced when the user asks for it.
        assert_eq!(
            classify_name("sqlalchemy.orm.session.Session", &[]),
            Owner::Traced
        );
    }
}
