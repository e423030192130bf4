//! Per-object index of the accesses that can still race with a later event,
//! so that race detection looks at a few candidates instead of walking the
//! trace backwards.
//!
//! An access `a` is dropped from the index once a later access `b` to the
//! same object both happens after it (same thread, or `b` conflicts with `a`:
//! race detection then leaves `b`'s clock covering `a`) and conflicts with
//! everything `a` conflicts with. Any later event that conflicts with `a`
//! then conflicts with `b` too, and `b`, which comes later, is examined
//! first and covers `a`: `a` could never be reported. What is kept per
//! object:
//! - per exact key, and for `Key::Any`: the last write and, per thread, the
//!   last read since it (a write to a key drops that key's reads; a write to
//!   `Any` drops everything);
//! - the last acquisition (acquisitions all conflict with each other);
//! - the last release, whose clock an acquisition inherits after race
//!   detection.
//!
//! Maps are ordered (no hashing), and candidates are returned sorted, so the
//! analysis does not depend on iteration order.

use std::collections::BTreeMap;

use crate::event::{Access, AccessKind, Key, ObjId, ThreadId};

/// The last write of a key and the reads after it (one per thread).
#[derive(Debug, Default)]
struct Slot {
    write: Option<usize>,
    reads: Vec<(ThreadId, usize)>,
}

impl Slot {
    fn push_all(&self, out: &mut Vec<usize>) {
        out.extend(self.write);
        out.extend(self.reads.iter().map(|&(_, p)| p));
    }

    fn read(&mut self, t: ThreadId, pos: usize) {
        match self.reads.iter_mut().find(|(q, _)| *q == t) {
            Some(slot) => slot.1 = pos,
            None => self.reads.push((t, pos)),
        }
    }

    fn write(&mut self, pos: usize) {
        self.write = Some(pos);
        self.reads.clear();
    }
}

#[derive(Debug, Default)]
struct ObjIndex {
    any: Slot,
    keys: BTreeMap<u64, Slot>,
    last_acquire: Option<usize>,
    last_release: Option<usize>,
}

/// Candidate racing accesses of the trace analysed so far.
#[derive(Debug, Default)]
pub(crate) struct AccessIndex {
    objs: BTreeMap<ObjId, ObjIndex>,
}

impl AccessIndex {
    pub fn clear(&mut self) {
        self.objs.clear();
    }

    /// Append to `out` the positions of indexed accesses that conflict with
    /// `a` (possibly with duplicates; the caller sorts and dedups). Every
    /// earlier event conflicting with `a` that is not returned happens before
    /// one that is.
    pub fn candidates(&self, a: &Access, out: &mut Vec<usize>) {
        let Some(o) = self.objs.get(&a.obj) else {
            return;
        };
        match (a.kind, a.key) {
            (AccessKind::Read, Key::Exact(k)) => {
                out.extend(o.any.write);
                out.extend(o.keys.get(&k).and_then(|s| s.write));
            }
            (AccessKind::Read, Key::Any) => {
                out.extend(o.any.write);
                out.extend(o.keys.values().filter_map(|s| s.write));
            }
            (AccessKind::Write, Key::Exact(k)) => {
                o.any.push_all(out);
                if let Some(s) = o.keys.get(&k) {
                    s.push_all(out);
                }
            }
            (AccessKind::Write, Key::Any) => {
                o.any.push_all(out);
                o.keys.values().for_each(|s| s.push_all(out));
            }
            (AccessKind::Acquire, _) => out.extend(o.last_acquire),
            _ => {}
        }
    }

    /// Record the access `a` of thread `t` at position `pos`, after its race
    /// detection (its clock now covers every conflicting earlier access).
    pub fn record(&mut self, t: ThreadId, pos: usize, a: &Access) {
        let relevant = matches!(
            a.kind,
            AccessKind::Read | AccessKind::Write | AccessKind::Acquire | AccessKind::Release
        );
        if !relevant {
            return;
        }
        let o = self.objs.entry(a.obj).or_default();
        match (a.kind, a.key) {
            (AccessKind::Read, Key::Exact(k)) => o.keys.entry(k).or_default().read(t, pos),
            (AccessKind::Read, Key::Any) => o.any.read(t, pos),
            (AccessKind::Write, Key::Exact(k)) => o.keys.entry(k).or_default().write(pos),
            (AccessKind::Write, Key::Any) => {
                o.keys.clear();
                o.any.write(pos);
            }
            (AccessKind::Acquire, _) => o.last_acquire = Some(pos),
            (AccessKind::Release, _) => o.last_release = Some(pos),
            _ => {}
        }
    }

    /// Position of the last release of lock `obj` recorded so far.
    pub fn last_release(&self, obj: ObjId) -> Option<usize> {
        self.objs.get(&obj).and_then(|o| o.last_release)
    }

    /// Record a release only (for events that take part in no race
    /// detection but still hand a lock over).
    pub fn record_release(&mut self, obj: ObjId, pos: usize) {
        self.objs.entry(obj).or_default().last_release = Some(pos);
    }
}
