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
//! The index is rebuilt for every execution, so its storage is pooled and
//! reused instead of freed. Lookups hash with a fixed function and nothing
//! iterates a map, so the analysis does not depend on hashing.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::event::{Access, AccessKind, Key, ObjId, ThreadId};

/// The last write of a key and the reads after it (one per thread).
#[derive(Debug, Default)]
struct KeyHistory {
    write: Option<usize>,
    reads: Vec<(ThreadId, usize)>,
}

impl KeyHistory {
    fn reset(&mut self) {
        self.write = None;
        self.reads.clear();
    }

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
    any: KeyHistory,
    /// `(key, slot index)` of every exact key with a live slot.
    keys: Vec<(u64, usize)>,
    last_acquire: Option<usize>,
    last_release: Option<usize>,
}

impl ObjIndex {
    fn reset(&mut self) {
        self.any.reset();
        self.keys.clear();
        self.last_acquire = None;
        self.last_release = None;
    }
}

/// A fixed (unseeded) hash of the `u64` ids used as map keys: ids are
/// already hashes or small counters, so one multiply-xorshift mixes enough.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(32) ^ n).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    }
}

type IdMap<K> = HashMap<K, usize, BuildHasherDefault<IdHasher>>;

/// Candidate racing accesses of the trace analysed so far.
#[derive(Debug, Default)]
pub(crate) struct AccessIndex {
    /// Object id → index into `objs`.
    obj_of: IdMap<ObjId>,
    /// `(object, exact key)` → index into `slots`.
    slot_of: IdMap<(ObjId, u64)>,
    /// Pools: the first `objs_used` entries are live; slots are live unless
    /// listed in `free_slots`.
    objs: Vec<ObjIndex>,
    objs_used: usize,
    slots: Vec<KeyHistory>,
    free_slots: Vec<usize>,
    /// The last object and slot looked up: an event's race detection and
    /// its recording look up the same ones. Key histories are invalidated
    /// when their slot is freed; object entries live until `clear`.
    last_obj: Cell<Option<(ObjId, usize)>>,
    last_slot: Cell<Option<((ObjId, u64), usize)>>,
}

impl AccessIndex {
    /// Forget everything, keeping the storage.
    pub fn clear(&mut self) {
        self.obj_of.clear();
        self.slot_of.clear();
        self.objs_used = 0;
        self.free_slots.clear();
        self.free_slots.extend((0..self.slots.len()).rev());
        self.last_obj.set(None);
        self.last_slot.set(None);
    }

    fn find_obj(&self, obj: ObjId) -> Option<usize> {
        if let Some((o, i)) = self.last_obj.get() {
            if o == obj {
                return Some(i);
            }
        }
        let i = *self.obj_of.get(&obj)?;
        self.last_obj.set(Some((obj, i)));
        Some(i)
    }

    fn find_slot(&self, obj: ObjId, key: u64) -> Option<usize> {
        if let Some((k, s)) = self.last_slot.get() {
            if k == (obj, key) {
                return Some(s);
            }
        }
        let s = *self.slot_of.get(&(obj, key))?;
        self.last_slot.set(Some(((obj, key), s)));
        Some(s)
    }

    fn obj(&self, obj: ObjId) -> Option<&ObjIndex> {
        self.find_obj(obj).map(|i| &self.objs[i])
    }

    fn obj_mut(&mut self, obj: ObjId) -> usize {
        if let Some(i) = self.find_obj(obj) {
            return i;
        }
        let i = self.objs_used;
        self.objs_used += 1;
        if i == self.objs.len() {
            self.objs.push(ObjIndex::default());
        } else {
            self.objs[i].reset();
        }
        self.obj_of.insert(obj, i);
        i
    }

    fn slot_mut(&mut self, o: usize, obj: ObjId, key: u64) -> &mut KeyHistory {
        let s = match self.find_slot(obj, key) {
            Some(s) => s,
            None => {
                let s = match self.free_slots.pop() {
                    Some(s) => {
                        self.slots[s].reset();
                        s
                    }
                    None => {
                        self.slots.push(KeyHistory::default());
                        self.slots.len() - 1
                    }
                };
                self.slot_of.insert((obj, key), s);
                self.objs[o].keys.push((key, s));
                s
            }
        };
        &mut self.slots[s]
    }

    /// Append to `out` the positions of indexed accesses that conflict with
    /// `a` (possibly with duplicates; the caller sorts and dedups). Every
    /// earlier event conflicting with `a` that is not returned happens before
    /// one that is.
    pub fn candidates(&self, a: &Access, out: &mut Vec<usize>) {
        let Some(o) = self.obj(a.obj) else {
            return;
        };
        let slot = |k: u64| self.find_slot(a.obj, k).map(|s| &self.slots[s]);
        let all_slots = || o.keys.iter().map(|&(_, s)| &self.slots[s]);
        match (a.kind, a.key) {
            (AccessKind::Read, Key::Exact(k)) => {
                out.extend(o.any.write);
                out.extend(slot(k).and_then(|s| s.write));
            }
            (AccessKind::Read, Key::Any) => {
                out.extend(o.any.write);
                out.extend(all_slots().filter_map(|s| s.write));
            }
            (AccessKind::Write, Key::Exact(k)) => {
                o.any.push_all(out);
                if let Some(s) = slot(k) {
                    s.push_all(out);
                }
            }
            (AccessKind::Write, Key::Any) => {
                o.any.push_all(out);
                all_slots().for_each(|s| s.push_all(out));
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
        let o = self.obj_mut(a.obj);
        match (a.kind, a.key) {
            (AccessKind::Read, Key::Exact(k)) => self.slot_mut(o, a.obj, k).read(t, pos),
            (AccessKind::Read, Key::Any) => self.objs[o].any.read(t, pos),
            (AccessKind::Write, Key::Exact(k)) => self.slot_mut(o, a.obj, k).write(pos),
            (AccessKind::Write, Key::Any) => {
                // Everything on the object is now covered by this write.
                let keys = std::mem::take(&mut self.objs[o].keys);
                if !keys.is_empty() {
                    self.last_slot.set(None);
                }
                for &(k, s) in &keys {
                    self.slot_of.remove(&(a.obj, k));
                    self.free_slots.push(s);
                }
                let obj = &mut self.objs[o];
                obj.keys = keys;
                obj.keys.clear();
                obj.any.write(pos);
            }
            (AccessKind::Acquire, _) => self.objs[o].last_acquire = Some(pos),
            (AccessKind::Release, _) => self.objs[o].last_release = Some(pos),
            _ => {}
        }
    }

    /// Position of the last release of lock `obj` recorded so far.
    pub fn last_release(&self, obj: ObjId) -> Option<usize> {
        self.obj(obj).and_then(|o| o.last_release)
    }

    /// Record a release only (for events that take part in no race
    /// detection but still hand a lock over).
    pub fn record_release(&mut self, obj: ObjId, pos: usize) {
        let o = self.obj_mut(obj);
        self.objs[o].last_release = Some(pos);
    }
}
