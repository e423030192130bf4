//! A wakeup sequence: trace events (by position) with their happens-before
//! relation recomputed *inside* the sequence, as vector clocks.
//!
//! In the whole trace two events of the sequence may be ordered only through
//! events it leaves out (those after the reversed race), which no longer
//! order them once the sequence runs on its own, so the relation is rebuilt
//! from the direct dependencies between its own events: same thread, the
//! enabling event, a conflict, a lock handed over (release/acquire either
//! way), a spawn or join of the other's thread.
//!
//! Short sequences compare every pair; long ones (a race spanning much
//! independent work) find each event's direct predecessors through the
//! per-object [`AccessIndex`] and per-lock, per-thread last operations, so
//! building costs O(length × threads) instead of O(length²).

use std::collections::HashMap;

use super::index::AccessIndex;
use super::step::Executed;
use crate::event::{AccessKind, Event, ObjId, ThreadId};

/// Up to this length, dependencies are found by comparing all pairs.
const PAIRWISE_MAX: usize = 48;

/// A sequence of trace events with its internal happens-before relation;
/// events are removed (made not live) as a wakeup-tree walk consumes them.
pub(crate) struct Sequence {
    pub pos: Vec<usize>,
    live: Vec<bool>,
    live_count: usize,
    thread: Vec<ThreadId>,
    /// Per thread, its first live element (`len` when none), and per
    /// element the next one of its thread: a walk only ever consumes a
    /// thread's first live element, so the live ones are always a suffix.
    first: Vec<usize>,
    next: Vec<usize>,
    /// Per element, `stride` counters: how many events of each thread of the
    /// sequence happen before it or are it.
    clocks: Vec<u32>,
    /// 1-based index of each element among its thread's elements.
    local: Vec<u32>,
    stride: usize,
}

impl Sequence {
    /// Build the sequence of trace positions `v` (ascending) of `trace`,
    /// whose thread ids are below `threads`.
    pub fn new<N: Executed>(trace: &[N], v: Vec<usize>, threads: usize) -> Self {
        let indexed = v.len() > PAIRWISE_MAX;
        Self::build(trace, v, threads, indexed)
    }

    fn build<N: Executed>(trace: &[N], v: Vec<usize>, threads: usize, indexed: bool) -> Self {
        let k = v.len();
        let n = v
            .iter()
            .map(|&p| trace[p].thread() + 1)
            .max()
            .unwrap_or(0)
            .max(threads);
        let mut first = vec![k; n];
        let mut next = vec![k; k];
        for (e, &p) in v.iter().enumerate().rev() {
            let t = trace[p].thread();
            next[e] = first[t];
            first[t] = e;
        }
        let mut s = Sequence {
            live: vec![true; k],
            live_count: k,
            first,
            next,
            thread: v.iter().map(|&p| trace[p].thread()).collect(),
            clocks: vec![0; k * n],
            local: vec![0; k],
            stride: n,
            pos: v,
        };
        let mut count = vec![0u32; n];
        let mut last: Vec<Option<usize>> = vec![None; n];
        let mut deps = if indexed { Some(Deps::default()) } else { None };
        let mut cov = vec![0u32; n];
        let mut preds = Vec::new();
        for b in 0..k {
            let tb = s.thread[b];
            match last[tb] {
                Some(p) => cov.copy_from_slice(&s.clocks[p * n..(p + 1) * n]),
                None => cov.iter_mut().for_each(|c| *c = 0),
            }
            if let Some(deps) = &deps {
                preds.clear();
                deps.direct_preds(trace, &s, b, &last, &mut preds);
                for &a in &preds {
                    join_into(&mut cov, &s.clocks[a * n..(a + 1) * n]);
                }
            } else {
                for a in (0..b).rev() {
                    let ta = s.thread[a];
                    if cov[ta] >= s.local[a] {
                        continue;
                    }
                    if direct(trace, s.pos[a], s.pos[b]) {
                        join_into(&mut cov, &s.clocks[a * n..(a + 1) * n]);
                    }
                }
            }
            count[tb] += 1;
            s.local[b] = count[tb];
            cov[tb] = count[tb];
            s.clocks[b * n..(b + 1) * n].copy_from_slice(&cov);
            if let Some(deps) = &mut deps {
                deps.record(trace[s.pos[b]].event(), tb, b, n);
            }
            last[tb] = Some(b);
        }
        s
    }

    /// Whether element `a` happens before element `b` (`a < b`) within the
    /// sequence (the queries below use the clocks directly).
    #[cfg(test)]
    fn pred(&self, b: usize, a: usize) -> bool {
        self.clocks[b * self.stride + self.thread[a]] >= self.local[a]
    }
    pub fn is_live(&self, k: usize) -> bool {
        self.live[k]
    }
    pub fn thread(&self, k: usize) -> ThreadId {
        self.thread[k]
    }
    pub fn is_empty(&self) -> bool {
        self.live_count == 0
    }

    /// The first live element of thread `p`, if any.
    pub fn first_live(&self, p: ThreadId) -> Option<usize> {
        self.first.get(p).copied().filter(|&k| k < self.pos.len())
    }

    /// Whether some live element happens before element `k`, the first live
    /// one of its thread. The elements of a thread that happen before `k`
    /// are its first `clock_k[q]`; the live ones start at its first live one.
    pub fn has_live_pred(&self, k: usize) -> bool {
        let row = &self.clocks[k * self.stride..(k + 1) * self.stride];
        (0..self.stride).any(|q| {
            q != self.thread[k] && self.first_live(q).is_some_and(|f| row[q] >= self.local[f])
        })
    }

    /// Consume element `k`, which must be the first live one of its thread.
    pub fn consume(&mut self, k: usize) {
        let t = self.thread[k];
        assert_eq!(self.first_live(t), Some(k), "consumed out of thread order");
        self.live[k] = false;
        self.first[t] = self.next[k];
        self.live_count -= 1;
    }
    pub fn remaining(&self) -> impl Iterator<Item = usize> + '_ {
        self.pos
            .iter()
            .zip(&self.live)
            .filter(|(_, &l)| l)
            .map(|(&p, _)| p)
    }
}

/// Whether trace event `pa` must stay before the later `pb` when both run
/// in a sequence.
fn direct<N: Executed>(trace: &[N], pa: usize, pb: usize) -> bool {
    let (a, b) = (&trace[pa], &trace[pb]);
    b.enabled_by() == Some(pa) || interferes(a.event(), a.thread(), b.event(), b.thread())
}

/// Whether event `a` of thread `ta` must stay before event `b` of thread
/// `tb` when it comes first: same thread, a conflict, a lock handed over
/// (release then acquire, or acquire then release), a spawn of `tb`, or `b`
/// joining `ta`.
pub(crate) fn interferes(a: &Event, ta: ThreadId, b: &Event, tb: ThreadId) -> bool {
    if ta == tb {
        return true;
    }
    if a.conflicts(b) {
        return true;
    }
    let lock_handover = |x: &Event, y: &Event| {
        x.accesses.iter().any(|r| {
            r.kind == AccessKind::Release
                && y.accesses
                    .iter()
                    .any(|q| q.kind == AccessKind::Acquire && q.obj == r.obj)
        })
    };
    let spawns = |x: &Event, child: ThreadId| {
        x.accesses.iter().any(|r| {
            matches!(r.kind, AccessKind::Spawn | AccessKind::Join) && r.obj as usize == child
        })
    };
    lock_handover(a, b) || lock_handover(b, a) || spawns(a, tb) || spawns(b, ta)
}

/// Per lock, per thread: the last acquisition and release in the sequence.
#[derive(Default)]
struct LockOps {
    by_thread: Vec<(ThreadId, Option<usize>, Option<usize>)>,
}

/// Index of the sequence elements seen so far that later elements may
/// directly depend on. Among elements a later one depends on, those it
/// omits happen before one it returns.
#[derive(Default)]
struct Deps {
    rw: AccessIndex,
    locks: HashMap<ObjId, LockOps>,
    /// Per thread id: elements that spawn or join it.
    spawners: Vec<Vec<usize>>,
}

impl Deps {
    /// Push onto `out` direct predecessors of element `b`, enough that
    /// every direct predecessor happens before (or is) one of them.
    fn direct_preds<N: Executed>(
        &self,
        trace: &[N],
        s: &Sequence,
        b: usize,
        last: &[Option<usize>],
        out: &mut Vec<usize>,
    ) {
        let node = &trace[s.pos[b]];
        if let Some(p) = node.enabled_by() {
            if let Ok(a) = s.pos[..b].binary_search(&p) {
                out.push(a);
            }
        }
        if let Some(sp) = self.spawners.get(node.thread()) {
            out.extend(sp);
        }
        for acc in &node.event().accesses {
            match acc.kind {
                AccessKind::Read | AccessKind::Write => self.rw.candidates(acc, out),
                AccessKind::Acquire | AccessKind::Release => {
                    let acquire = acc.kind == AccessKind::Acquire;
                    if let Some(l) = self.locks.get(&acc.obj) {
                        for &(_, acq, rel) in &l.by_thread {
                            out.extend(acq);
                            if acquire {
                                out.extend(rel);
                            }
                        }
                    }
                }
                AccessKind::Spawn | AccessKind::Join => {
                    if let Some(Some(a)) = last.get(acc.obj as usize) {
                        out.push(*a);
                    }
                }
            }
        }
    }

    fn record(&mut self, ev: &Event, t: ThreadId, b: usize, threads: usize) {
        for acc in &ev.accesses {
            match acc.kind {
                AccessKind::Read | AccessKind::Write => self.rw.record(t, b, acc),
                AccessKind::Acquire | AccessKind::Release => {
                    let l = self.locks.entry(acc.obj).or_default();
                    let i = match l.by_thread.iter().position(|e| e.0 == t) {
                        Some(i) => i,
                        None => {
                            l.by_thread.push((t, None, None));
                            l.by_thread.len() - 1
                        }
                    };
                    if acc.kind == AccessKind::Acquire {
                        l.by_thread[i].1 = Some(b);
                    } else {
                        l.by_thread[i].2 = Some(b);
                    }
                }
                AccessKind::Spawn | AccessKind::Join => {
                    let child = acc.obj as usize;
                    if child < threads {
                        if self.spawners.len() < threads {
                            self.spawners.resize(threads, Vec::new());
                        }
                        self.spawners[child].push(b);
                    }
                }
            }
        }
    }
}

fn join_into(acc: &mut [u32], other: &[u32]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, Key};
    use crate::rng::SplitMix64;
    use crate::strategy::dpor::path::Node;

    fn random_events(seed: u64) -> Vec<Node> {
        let mut r = SplitMix64::new(seed);
        let threads = 2 + r.below(3) as usize;
        let len = 1 + r.below(120) as usize;
        let mut nodes: Vec<Node> = Vec::new();
        for p in 0..len {
            let k = r.below(3) as usize;
            let accesses = (0..k)
                .map(|_| {
                    let obj = r.below(3);
                    let key = match r.below(4) {
                        0 => Key::Any,
                        k => Key::Exact(k),
                    };
                    let kind = match r.below(10) {
                        0..=2 => AccessKind::Read,
                        3..=5 => AccessKind::Write,
                        6 => AccessKind::Acquire,
                        7 => AccessKind::Release,
                        8 => AccessKind::Spawn,
                        _ => AccessKind::Join,
                    };
                    let obj = match kind {
                        AccessKind::Spawn | AccessKind::Join => r.below(threads as u64 + 1),
                        AccessKind::Acquire | AccessKind::Release => 100 + obj % 2,
                        _ => obj,
                    };
                    Access { obj, key, kind }
                })
                .collect();
            let enabled_by = (p > 0 && r.below(8) == 0).then(|| r.below(p as u64) as usize);
            nodes.push(Node {
                thread: r.below(threads as u64) as usize,
                event: Event::new(accesses, 0),
                enabled_by,
                ..Node::default()
            });
        }
        nodes
    }

    /// The indexed construction gives the same relation as comparing every
    /// pair, which is the transitive closure of `direct` by construction.
    #[test]
    fn indexed_matches_pairwise() {
        let mut pairs = 0;
        let mut ordered = 0;
        for seed in 0..1500 {
            let trace = random_events(seed);
            let mut r = SplitMix64::new(seed ^ 0xABCD);
            let v: Vec<usize> = (0..trace.len()).filter(|_| r.below(4) != 0).collect();
            let threads = 5;
            let slow = Sequence::build(&trace, v.clone(), threads, false);
            let fast = Sequence::build(&trace, v, threads, true);
            for b in 0..slow.pos.len() {
                for a in 0..b {
                    assert_eq!(
                        slow.pred(b, a),
                        fast.pred(b, a),
                        "seed {seed}: order of elements {a} and {b} differs"
                    );
                    pairs += 1;
                    ordered += usize::from(slow.pred(b, a));
                }
            }
        }
        // Both outcomes must be well represented for the test to mean anything.
        assert!(
            ordered > pairs / 10 && ordered < pairs * 9 / 10,
            "{ordered}/{pairs}"
        );
    }

    /// `first_live` / `has_live_pred` agree with scans of the live flags
    /// while elements are consumed in a random thread order.
    #[test]
    fn live_queries_match_scans() {
        let mut checked = 0;
        for seed in 0..500 {
            let trace = random_events(seed);
            let v: Vec<usize> = (0..trace.len()).collect();
            let mut s = Sequence::new(&trace, v, 5);
            let mut r = SplitMix64::new(seed);
            while !s.is_empty() {
                for p in 0..6 {
                    let scan = (0..s.pos.len()).find(|&k| s.live[k] && s.thread[k] == p);
                    assert_eq!(s.first_live(p), scan, "seed {seed}");
                    if let Some(k) = scan {
                        let before = (0..k).any(|m| s.live[m] && s.pred(k, m));
                        assert_eq!(s.has_live_pred(k), before, "seed {seed}");
                        checked += 1;
                    }
                }
                let p = r.below(5) as usize;
                if let Some(k) = s.first_live(p) {
                    s.consume(k);
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    /// Pairwise construction against a direct transitive closure.
    // Indices name sequence elements here; iterators would hide that.
    #[allow(clippy::needless_range_loop)]
    #[test]
    fn pairwise_is_transitive_closure() {
        for seed in 0..300 {
            let trace = random_events(seed);
            let v: Vec<usize> = (0..trace.len()).collect();
            let s = Sequence::build(&trace, v.clone(), 5, false);
            let k = v.len();
            let mut reach = vec![vec![false; k]; k];
            for b in 0..k {
                for a in (0..b).rev() {
                    if direct(&trace, v[a], v[b]) {
                        reach[b][a] = true;
                        for c in 0..a {
                            if reach[a][c] {
                                reach[b][c] = true;
                            }
                        }
                    }
                }
            }
            for b in 0..k {
                for a in 0..b {
                    assert_eq!(s.pred(b, a), reach[b][a], "seed {seed}: {a} -> {b}");
                }
            }
        }
    }
}
