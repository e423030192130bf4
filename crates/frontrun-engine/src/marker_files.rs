//! The marker table of each source file, read once and cached for the life of
//! the process. An entry is re-read when the file's size or modification time
//! changes, so editing a module (and reloading it) is picked up.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::SystemTime;

use crate::markers::{scan, DuplicateMarker, FileMarkers};

/// What a file holds, as far as markers are concerned.
#[derive(Clone, Debug)]
pub enum FileScan {
    /// Not a readable file (`<string>`, frozen modules, deleted files).
    Unreadable,
    /// Readable, no marker in it.
    NoMarkers,
    /// Readable, with markers.
    Markers(Arc<FileMarkers>),
    /// Readable, but a marker name is used twice.
    Duplicate(DuplicateMarker),
}

struct ScanEntry {
    size: u64,
    mtime: Option<SystemTime>,
    scan: FileScan,
}

static CACHE: LazyLock<Mutex<HashMap<String, ScanEntry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The markers of the file at `path`; reads and scans it only if it is new or
/// has changed since it was last scanned.
pub fn markers_of(path: &str) -> FileScan {
    let Ok(meta) = std::fs::metadata(path) else {
        return FileScan::Unreadable;
    };
    if !meta.is_file() {
        return FileScan::Unreadable;
    }
    let (size, mtime) = (meta.len(), meta.modified().ok());
    // A poisoned lock only means another thread panicked mid-insert; the map
    // itself is still a valid cache.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = cache.get(path) {
        if e.size == size && e.mtime == mtime {
            return e.scan.clone();
        }
    }
    let Ok(bytes) = std::fs::read(path) else {
        return FileScan::Unreadable;
    };
    let text = String::from_utf8_lossy(&bytes);
    let scan = match scan(&text) {
        Ok(m) if m.is_empty() => FileScan::NoMarkers,
        Ok(m) => FileScan::Markers(Arc::new(m)),
        Err(dup) => FileScan::Duplicate(dup),
    };
    cache.insert(
        path.to_owned(),
        ScanEntry {
            size,
            mtime,
            scan: scan.clone(),
        },
    );
    scan
}
