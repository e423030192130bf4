//! Happens-before and race detection over one executed trace.
//!
//! [`TraceClocks::analyze`] computes a vector clock per event in one forward
//! pass and, for each event `e'`, the events `e` of other threads that race
//! with it: `e` conflicts with `e'` and no other predecessor of `e'` (its
//! thread's previous event, a joined thread, or another conflicting event)
//! already happens after `e`. For a lock `Acquire`, the edge from the lock's
//! last `Release` is added *after* the acquisition's own race detection: that
//! edge is exactly what a reversal of two acquisitions removes, so it must not
//! hide the race. The event's other accesses happen once the lock is taken,
//! so they are checked after that edge: checked before it, a conflict with a
//! step the previous holder made under the lock would cover (by program
//! order) the holder's acquisition and hide the lock race, leaving only a
//! reversal that cannot run (the lock is held there).
//!
//! The candidates `e` of a long trace come from an [`AccessIndex`] (the few
//! accesses per object that can still race), so the pass costs O(accesses +
//! threads) per event; short traces and blocked events walk the trace
//! backwards instead (same result, checked by a test).

use super::index::AccessIndex;
use super::sequence::{interferes, Sequence};
use super::step::Executed;
use crate::event::{Access, AccessKind, Event, ObjId, ThreadId};

/// Clocks of every event of a trace, stored flat (`stride` entries per event).
#[derive(Debug)]
pub(crate) struct TraceClocks {
    stride: usize,
    clocks: Vec<u32>,
    /// 1-based index of each event within its thread.
    local: Vec<u32>,
    /// Position of the next event of the same thread, if any.
    next_same: Vec<Option<usize>>,
    // Scratch, kept to reuse allocations between executions.
    last_of: Vec<Option<usize>>,
    spawned_at: Vec<Option<usize>>,
    index: AccessIndex,
    cands: Vec<usize>,
    /// Traces up to this length use the backward walk, which is cheaper
    /// than maintaining the index when there is little to walk (tests set
    /// it to force either method).
    walk_up_to: usize,
    cov: Vec<u32>,
    /// Per thread, events at positions before the current one (real only).
    seen: Vec<u32>,
    /// Per thread, events at positions `<= i` during a backward walk.
    rem: Vec<u32>,
}

impl Default for TraceClocks {
    fn default() -> Self {
        TraceClocks {
            stride: 0,
            clocks: Vec::new(),
            local: Vec::new(),
            next_same: Vec::new(),
            last_of: Vec::new(),
            spawned_at: Vec::new(),
            index: AccessIndex::default(),
            cands: Vec::new(),
            walk_up_to: WALK_UP_TO,
            cov: Vec::new(),
            seen: Vec::new(),
            rem: Vec::new(),
        }
    }
}

impl TraceClocks {
    /// Analyse `trace`; races `(i, j)` with `j >= from` are appended to
    /// `races`. Events from `real_len` on are the pending events of blocked
    /// threads (one per thread): they never ran, so they order nothing, not
    /// even each other. A blocked event that is not a lock acquisition
    /// can only be moved to points where its thread was enabled (`changes`:
    /// per thread, the depths at which it became disabled/enabled); other
    /// points are invisible to its race search.
    pub fn analyze<N: Executed>(
        &mut self,
        trace: &[N],
        real_len: usize,
        from: usize,
        races: &mut Vec<(usize, usize)>,
    ) {
        let n = thread_count(trace);
        let len = trace.len();
        self.stride = n;
        self.clocks.clear();
        self.clocks.resize(len * n, 0);
        self.local.clear();
        self.local.resize(len, 0);
        self.next_same.clear();
        self.next_same.resize(len, None);
        self.last_of.clear();
        self.last_of.resize(n, None);
        self.spawned_at.clear();
        self.spawned_at.resize(n, None);
        self.index.clear();
        self.cov.clear();
        self.cov.resize(n, 0);
        self.seen.clear();
        self.seen.resize(n, 0);

        for j in 0..len {
            let t = trace[j].thread();
            let ev = &trace[j].event();
            // Base: program order (or the spawn point for a thread's first event).
            let base = self.last_of[t].or(self.spawned_at[t]);
            match base {
                Some(p) => self.cov.copy_from_slice(&self.clocks[p * n..(p + 1) * n]),
                None => self.cov.iter_mut().for_each(|c| *c = 0),
            }
            let own_prev = self.last_of[t].map_or(0, |p| self.local[p]);
            if let Some(p) = trace[j].enabled_by().filter(|&p| p < j) {
                join_into(&mut self.cov, &self.clocks[p * n..(p + 1) * n]);
            }
            for a in &ev.accesses {
                if a.kind == AccessKind::Join {
                    if let Some(p) = self.last_of.get(a.obj as usize).copied().flatten() {
                        join_into(&mut self.cov, &self.clocks[p * n..(p + 1) * n]);
                    }
                }
            }
            let acquires = ev.accesses.iter().any(|a| a.kind == AccessKind::Acquire);
            let parts: &[Part] = if acquires {
                &[Part::Acquires, Part::Rest]
            } else {
                &[Part::All]
            };
            for &part in parts {
                if part == Part::Rest {
                    for a in ev.accesses.iter().filter(|a| a.kind == AccessKind::Acquire) {
                        self.inherit_release(a.obj);
                    }
                }
                if j < real_len && real_len > self.walk_up_to {
                    self.indexed_races(trace, j, from, part, races);
                } else {
                    // A blocked event (at most one per thread and execution,
                    // so the full walk it needs costs O(trace) per
                    // execution), or a short trace.
                    self.walk_races(trace, j, real_len, from, part, races);
                }
            }
            for a in &ev.accesses {
                if j < real_len {
                    self.index.record(t, j, a);
                } else if a.kind == AccessKind::Release {
                    self.index.record_release(a.obj, j);
                }
            }
            for a in &ev.accesses {
                if a.kind == AccessKind::Spawn {
                    if let Some(s) = self.spawned_at.get_mut(a.obj as usize) {
                        *s = Some(j);
                    }
                }
            }
            self.cov[t] = own_prev + 1;
            self.local[j] = own_prev + 1;
            self.clocks[j * n..(j + 1) * n].copy_from_slice(&self.cov);
            if let Some(p) = self.last_of[t] {
                self.next_same[p] = Some(j);
            }
            self.last_of[t] = Some(j);
            if j < real_len {
                self.seen[t] += 1;
            }
        }
    }

    /// Races of the real event `j` (its base clock in `cov`) from the
    /// index's candidates, latest first: a later racing event's clock covers
    /// what happens before it. Same result as [`Self::walk_races`].
    fn indexed_races<N: Executed>(
        &mut self,
        trace: &[N],
        j: usize,
        from: usize,
        part: Part,
        races: &mut Vec<(usize, usize)>,
    ) {
        let n = self.stride;
        let t = trace[j].thread();
        self.cands.clear();
        let ev = trace[j].event();
        for a in ev.accesses.iter().filter(|a| part.has(ev, a)) {
            self.index.candidates(a, &mut self.cands);
        }
        self.cands.sort_unstable_by(|a, b| b.cmp(a));
        self.cands.dedup();
        for &i in &self.cands {
            let ti = trace[i].thread();
            if ti != t && self.cov[ti] < self.local[i] {
                if j >= from {
                    races.push((i, j));
                }
                let (head, _) = self.clocks.split_at(j * n);
                join_into(&mut self.cov, &head[i * n..(i + 1) * n]);
            }
        }
    }

    /// Races of event `j` by walking the real trace backwards until every
    /// earlier event is covered. Needed for blocked events (`j >= real_len`),
    /// whose non-acquisitions report every uncovered conflicting write.
    fn walk_races<N: Executed>(
        &mut self,
        trace: &[N],
        j: usize,
        real_len: usize,
        from: usize,
        part: Part,
        races: &mut Vec<(usize, usize)>,
    ) {
        let n = self.stride;
        let t = trace[j].thread();
        let ev = &trace[j].event();
        let restricted =
            j >= real_len && !ev.accesses.iter().any(|a| a.kind == AccessKind::Acquire);
        if !ev.accesses.iter().any(|a| part.has(ev, a)) {
            return;
        }
        self.rem.clear();
        self.rem.extend_from_slice(&self.seen);
        for i in (0..j.min(real_len)).rev() {
            // Once every earlier event happens before this one,
            // none of them can race with it.
            if self.cov.iter().zip(&self.rem).all(|(c, r)| c >= r) {
                break;
            }
            let ti = trace[i].thread();
            self.rem[ti] -= 1;
            if ti == t || !part.conflicts(ev, trace[i].event()) {
                continue;
            }
            if restricted {
                // Which earlier write kept this thread blocked is
                // unknown (it depends on values), so every write it
                // does not already follow is a candidate reversal;
                // infeasible ones are dropped when replayed.
                if self.cov[ti] < self.local[i] && j >= from {
                    races.push((i, j));
                }
                continue;
            }
            if self.cov[ti] < self.local[i] {
                if j >= from {
                    races.push((i, j));
                }
                let (head, _) = self.clocks.split_at(j * n);
                join_into(&mut self.cov, &head[i * n..(i + 1) * n]);
            }
        }
    }

    /// An acquisition inherits its lock's last release, after race detection.
    fn inherit_release(&mut self, obj: ObjId) {
        let n = self.stride;
        if let Some(r) = self.index.last_release(obj) {
            join_into(&mut self.cov, &self.clocks[r * n..(r + 1) * n]);
        }
    }

    /// Whether the event at position `i` happens before the one at `j` (`i < j`).
    pub fn hb<N: Executed>(&self, trace: &[N], i: usize, j: usize) -> bool {
        i != j && self.clocks[j * self.stride + trace[i].thread()] >= self.local[i]
    }

    /// The clock of the event at position `j`: per thread, how many of its
    /// events happen before it or are it.
    pub fn row(&self, j: usize) -> &[u32] {
        &self.clocks[j * self.stride..(j + 1) * self.stride]
    }

    /// Position of the next event of the same thread after `i`.
    pub fn next_same(&self, i: usize) -> Option<usize> {
        self.next_same[i]
    }
}

/// Which accesses of an event a race search looks at: an event that
/// acquires a lock is searched in two parts, its acquisitions first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    All,
    Acquires,
    Rest,
}

impl Part {
    /// Whether `a`, an access of `ev`, is in this part. An acquisition's
    /// accesses to the lock itself (a try or timed acquire reads whether it
    /// is held) belong with the acquisition: they race with the holder's
    /// release, whose reversal is the try that fails while the lock is held.
    fn has(self, ev: &Event, a: &Access) -> bool {
        let on_lock = a.kind == AccessKind::Acquire
            || ev
                .accesses
                .iter()
                .any(|b| b.kind == AccessKind::Acquire && b.obj == a.obj);
        match self {
            Part::All => true,
            Part::Acquires => on_lock,
            Part::Rest => !on_lock,
        }
    }

    /// Whether this part of `ev` conflicts with `other`.
    fn conflicts(self, ev: &Event, other: &Event) -> bool {
        ev.accesses
            .iter()
            .filter(|a| self.has(ev, a))
            .any(|a| other.accesses.iter().any(|b| a.conflicts(b)))
    }
}

/// Default of [`TraceClocks::walk_up_to`].
const WALK_UP_TO: usize = 64;

/// Thread ids at or above this in a spawn/join are ignored.
const MAX_THREADS: u64 = 1 << 16;

fn join_into(acc: &mut [u32], other: &[u32]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

/// Number of thread slots a trace needs: every thread that ran, spawned or
/// was joined.
fn thread_count<N: Executed>(trace: &[N]) -> usize {
    let mut n = 0;
    for node in trace {
        n = n.max(node.thread() + 1);
        for a in &node.event().accesses {
            // The object of a spawn or join is a thread id; a value no
            // thread could have is a driver bug and must not size the clocks.
            if matches!(a.kind, AccessKind::Spawn | AccessKind::Join) && a.obj < MAX_THREADS {
                n = n.max(a.obj as usize + 1);
            }
        }
    }
    n
}

/// A view of the analysed trace used to reason about sequences of its
/// events (by position).
pub(crate) struct TraceView<'a, N> {
    pub trace: &'a [N],
    pub clocks: &'a TraceClocks,
}

impl<N: Executed> TraceView<'_, N> {
    pub fn thread(&self, k: usize) -> ThreadId {
        self.trace[k].thread()
    }
    pub fn event(&self, k: usize) -> &Event {
        self.trace[k].event()
    }
    pub fn hb(&self, i: usize, j: usize) -> bool {
        self.clocks.hb(self.trace, i, j)
    }

    /// The sequence `v` (trace positions, in trace order) with its own
    /// happens-before relation (see [`Sequence`]).
    pub fn sequence(&self, v: Vec<usize>) -> Sequence {
        Sequence::new(self.trace, v, self.clocks.stride)
    }

    /// Weak-initial test of the paper: can thread `p`, whose next event is
    /// `ev`, be taken first when `seq` is to be run? `None`: no.
    /// `Some(Some(k))`: yes, it is `seq.pos[k]`, the first live event of `p`,
    /// with no live event before it happening before it. `Some(None)`: yes,
    /// `p` is absent from `seq` and `ev` is independent of all of it.
    pub fn weak_initial(&self, p: ThreadId, ev: &Event, seq: &Sequence) -> Option<Option<usize>> {
        match seq.first_live(p) {
            Some(k) if seq.has_live_pred(k) => None,
            Some(k) => Some(Some(k)),
            None => {
                let dep = (0..seq.pos.len()).any(|k| {
                    seq.is_live(k) && interferes(ev, p, self.event(seq.pos[k]), seq.thread(k))
                });
                if dep {
                    None
                } else {
                    Some(None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, Key};
    use crate::rng::SplitMix64;
    use crate::strategy::dpor::path::Node;

    /// A random trace over 2–4 threads: reads and writes of exact keys and of
    /// whole objects, several accesses per event, lock operations, and a few
    /// pending (blocked) events at the end.
    fn random_trace(seed: u64) -> (Vec<Node>, usize) {
        let mut r = SplitMix64::new(seed);
        let threads = 2 + r.below(3) as usize;
        let len = 1 + r.below(60) as usize;
        let mut nodes = Vec::new();
        let access = |r: &mut SplitMix64| {
            let obj = r.below(3);
            let key = match r.below(4) {
                0 => Key::Any,
                k => Key::Exact(k),
            };
            match r.below(6) {
                0 | 1 => Access::read(obj, key),
                2 | 3 => Access::write(obj, key),
                4 => Access {
                    obj: 100 + obj % 2,
                    key: Key::Any,
                    kind: AccessKind::Acquire,
                },
                _ => Access {
                    obj: 100 + obj % 2,
                    key: Key::Any,
                    kind: AccessKind::Release,
                },
            }
        };
        for _ in 0..len {
            let k = r.below(4) as usize;
            nodes.push(Node {
                thread: r.below(threads as u64) as usize,
                event: Event::new((0..k).map(|_| access(&mut r)).collect(), 0),
                ..Node::default()
            });
        }
        let real_len = nodes.len();
        for t in 0..threads {
            if r.below(3) == 0 {
                nodes.push(Node {
                    thread: t,
                    event: Event::new(vec![access(&mut r)], 0),
                    ..Node::default()
                });
            }
        }
        (nodes, real_len)
    }

    fn lock(obj: u64, kind: AccessKind) -> Access {
        Access {
            obj,
            key: Key::Any,
            kind,
        }
    }

    /// An event that takes a lock and then writes what the previous holder
    /// wrote under it races with the holder's acquisition, not with its
    /// write: moving it before the write alone cannot run (the lock is held
    /// there). Both as a real event (after the release) and as one blocked
    /// on the held lock, with either race search.
    #[test]
    fn lock_race_is_not_hidden_by_a_write_under_the_lock() {
        let node = |thread: usize, accesses: Vec<Access>| Node {
            thread,
            event: Event::new(accesses, 0),
            ..Node::default()
        };
        let both = vec![lock(9, AccessKind::Acquire), Access::write(1, Key::Any)];
        let released = vec![
            node(0, vec![lock(9, AccessKind::Acquire)]),
            node(0, vec![Access::write(1, Key::Any)]),
            node(0, vec![lock(9, AccessKind::Release)]),
            node(1, both.clone()),
        ];
        let blocked = &released[..2];
        let blocked: Vec<Node> = blocked.iter().cloned().chain([node(1, both)]).collect();
        for walk_up_to in [0, usize::MAX] {
            let mut clocks = TraceClocks {
                walk_up_to,
                ..TraceClocks::default()
            };
            let mut races = Vec::new();
            clocks.analyze(&released, 4, 0, &mut races);
            assert_eq!(races, vec![(0, 3)]);
            races.clear();
            clocks.analyze(&blocked, 2, 0, &mut races);
            // (The write is a candidate too: a blocked event's conflicts
            // are all reported; the infeasible ones are dropped on replay.)
            assert!(races.contains(&(0, 2)), "{races:?}");
        }
    }

    /// The indexed race detection finds exactly the races, in the same
    /// order, and computes the same clocks as the backward walk it replaces.
    #[test]
    fn index_matches_backward_walk() {
        let mut total = 0;
        // Reused across traces, as the explorer reuses it across executions.
        let mut fast = TraceClocks {
            walk_up_to: 0,
            ..TraceClocks::default()
        };
        for seed in 0..3000 {
            let (trace, real_len) = random_trace(seed);
            let from = (seed as usize * 7) % (trace.len() + 1);
            let mut slow = TraceClocks {
                walk_up_to: usize::MAX,
                ..TraceClocks::default()
            };
            let (mut rf, mut rs) = (Vec::new(), Vec::new());
            fast.analyze(&trace, real_len, from, &mut rf);
            slow.analyze(&trace, real_len, from, &mut rs);
            assert_eq!(rf, rs, "races differ for seed {seed}");
            assert_eq!(fast.clocks, slow.clocks, "clocks differ for seed {seed}");
            total += rf.len();
        }
        // The traces must actually exercise race detection.
        assert!(total > 3000, "only {total} races in all traces");
    }
}
