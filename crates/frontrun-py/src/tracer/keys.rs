//! Content hashes for object ids and access keys.
//!
//! FNV-1a 64 is used because it is fixed: Python's `hash()` of a `str` is
//! salted per process, and ids must be comparable across executions.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple};

use frontrun_engine::hash::FNV_OFFSET as OFFSET;
pub use frontrun_engine::hash::{fnv_from, FastMap};

/// FNV-1a 64 of a tag byte followed by `bytes`.
pub fn fnv_tagged(tag: u8, bytes: &[u8]) -> u64 {
    fnv_from(fnv_from(OFFSET, &[tag]), bytes)
}

/// Combine a parent id with a child key: the path-based id of the child.
pub fn mix(parent: u64, key: u64) -> u64 {
    let h = fnv_from(OFFSET, &parent.to_le_bytes());
    fnv_from(h, &key.to_le_bytes())
}

/// Key of an attribute, global or closure variable named `name`.
pub fn attr_key(name: &str) -> u64 {
    fnv_tagged(b'a', name.as_bytes())
}

/// Key of a list index; negative indices have no stable key.
pub fn index_key(i: i64) -> u64 {
    fnv_tagged(b'i', &i.to_le_bytes())
}

/// A hashable item key: its content hash and a readable form (`'k'`, `3`).
pub struct ItemKey {
    pub hash: u64,
    /// Only whether the key is a non-negative int matters to list subscripts.
    pub int: Option<i64>,
}

/// Key under which a value is adopted when its place has no content key
/// (e.g. `d[obj] = v`); repeated uses get distinct ids from the registry.
pub fn unkeyed() -> u64 {
    fnv_tagged(b'u', &[])
}

/// The content key of `key` if it is a str, int, bool or bytes, or a tuple
/// of those; `None` means the access must use `Key::Any`.
pub fn item_key(key: &Bound<'_, PyAny>) -> Option<ItemKey> {
    if let Ok(t) = key.downcast::<PyTuple>() {
        // Bounded so a huge tuple key costs little per access.
        if t.len() > 8 {
            return None;
        }
        let mut h = fnv_tagged(b't', &(t.len() as u64).to_le_bytes());
        for item in t.iter() {
            h = mix(h, item_key(&item)?.hash);
        }
        return Some(ItemKey { hash: h, int: None });
    }
    if let Ok(s) = key.downcast::<PyString>() {
        let text = s.to_str().ok()?;
        return Some(ItemKey {
            hash: fnv_tagged(b's', text.as_bytes()),
            int: None,
        });
    }
    if let Ok(b) = key.downcast::<PyBool>() {
        // `d[True]` is `d[1]`: same key.
        let v = i64::from(b.is_true());
        return Some(ItemKey {
            hash: index_key(v),
            int: Some(v),
        });
    }
    if key.downcast::<PyInt>().is_ok() {
        // Ints beyond i64 have no stable key here: `Key::Any`.
        let v: i64 = key.extract().ok()?;
        return Some(ItemKey {
            hash: index_key(v),
            int: Some(v),
        });
    }
    if let Ok(b) = key.downcast::<PyBytes>() {
        return Some(ItemKey {
            hash: fnv_tagged(b'y', b.as_bytes()),
            int: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_differ() {
        assert_ne!(attr_key("x"), fnv_tagged(b's', b"x"));
        assert_ne!(mix(1, 2), mix(2, 1));
        assert_ne!(index_key(0), index_key(1));
    }
}
