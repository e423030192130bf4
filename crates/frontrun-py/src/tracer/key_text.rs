//! How each access key reads in an explanation: remembered by the tracer when
//! it hashes a name or an item key, looked up when an access is described.

use std::sync::{LazyLock, Mutex};

use frontrun_engine::event::Key;

use super::keys::FastMap;

/// How a key hash reads in a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyText {
    /// An attribute, global or closure variable: `.name`.
    Name(String),
    /// An item key's repr: `['k']`.
    Item(String),
}

static KEYS: LazyLock<Mutex<FastMap<u64, KeyText>>> = LazyLock::new(Mutex::default);

/// Beyond this many remembered keys the table starts over (a key forgotten
/// then reads as `#hash` in an explanation until it is met again).
pub const MAX_KEYS: usize = 1 << 14;

/// Number of remembered key texts (for the bounded-cache test).
pub fn key_count() -> usize {
    KEYS.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Remember how `hash` reads (first one wins: the hashes are by content).
pub fn remember_key(hash: u64, text: impl FnOnce() -> Option<KeyText>) {
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if keys.len() >= MAX_KEYS && !keys.contains_key(&hash) {
        keys.clear();
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(hash) {
        if let Some(t) = text() {
            slot.insert(t);
        }
    }
}

/// The readable key of `key`: `value`, `'k'`, `3` or `*`.
pub fn key_text(key: Key) -> String {
    match key {
        Key::Any => "*".into(),
        Key::Exact(h) => match KEYS.lock().unwrap_or_else(|e| e.into_inner()).get(&h) {
            Some(KeyText::Name(n) | KeyText::Item(n)) => n.clone(),
            None => format!("#{h:016x}"),
        },
    }
}

/// The remembered text of key `hash`, if any.
pub fn lookup(hash: u64) -> Option<KeyText> {
    KEYS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hash)
        .cloned()
}
