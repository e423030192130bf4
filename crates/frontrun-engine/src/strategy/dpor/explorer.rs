//! The [`Strategy`] implementation of optimal DPOR: prefix replay, wakeup-tree
//! following, free choices, and the end-of-execution race analysis and
//! backtracking.

use std::collections::HashSet;

use super::execution::Execution;
use super::path::{Node, PointState, SharedPoint, Started};
use super::race::{TraceClocks, TraceView};
use super::sequence::Sequence;
use super::wakeup::WakeupTree;
use super::{DporConfig, DporStats, SearchOrder};
use crate::event::{AccessKind, ThreadId};
use crate::rng::SplitMix64;
use crate::strategy::{Choice, Divergence, Outcome, Strategy, ThreadStatus};

/// Optimal DPOR over the executions a driver runs.
#[derive(Debug)]
pub struct Dpor {
    config: DporConfig,
    /// Nodes of the current execution; `stack[..replay_len]` have fixed
    /// choices recorded by the previous backtrack.
    stack: Vec<Node>,
    depth: usize,
    replay_len: usize,
    /// First position whose event is new in this execution: races whose later
    /// event lies before it were handled by an earlier execution.
    new_from: usize,
    /// Wakeup subtree to follow below the current depth.
    follow: WakeupTree,
    done: bool,
    stopped_by_limit: bool,
    stats: DporStats,
    rng: SplitMix64,
    exec: Execution,
    clocks: TraceClocks,
    /// Scratch for each execution's race analysis, kept to reuse its buffer.
    races: Vec<(usize, usize)>,
    passes: Passes,
}

/// The state of a search by passes of growing preemption bound (see
/// [`DporConfig::bound_passes`]).
#[derive(Debug, Default)]
struct Passes {
    /// The current pass: branches costing more are deferred.
    bound: u32,
    /// Executions begun in the current pass.
    runs: u64,
    /// The bound is past `max_bound`: nothing is deferred any more.
    unbounded: bool,
    /// Points left with branches to run, off the current path (an entry
    /// whose point has nothing left is dropped when met).
    deferred: Vec<SharedPoint>,
    /// The first point: it owns every other through `PointState::started`.
    root: Option<SharedPoint>,
    /// The points of `deferred`, so that none is saved twice.
    saved: HashSet<usize>,
}

/// Identifies a point across prefixes (its shared state's address).
fn point_id(n: &Node) -> usize {
    n.pending.id()
}

/// Whether the next branch of a point costs at most `bound`.
fn within(p: &SharedPoint, bound: u32) -> bool {
    p.get().wut.first_cost().is_some_and(|c| c <= bound)
}

fn is_open(p: &SharedPoint) -> bool {
    !p.get().wut.is_empty()
}

impl Dpor {
    pub fn new(config: DporConfig) -> Self {
        let seed = match config.search_order {
            SearchOrder::Random(s) => s,
            _ => 0,
        };
        Dpor {
            config,
            stack: Vec::new(),
            depth: 0,
            replay_len: 0,
            new_from: 0,
            follow: WakeupTree::default(),
            done: false,
            stopped_by_limit: false,
            stats: DporStats::default(),
            rng: SplitMix64::new(seed),
            exec: Execution::default(),
            clocks: TraceClocks::default(),
            races: Vec::new(),
            passes: Passes::default(),
        }
    }

    /// For a search by passes: the bound of the current pass (`None` once
    /// past the last bounded pass, or for a plain search).
    pub fn pass_bound(&self) -> Option<u32> {
        match self.config.bound_passes {
            Some(_) if !self.passes.unbounded => Some(self.passes.bound),
            _ => None,
        }
    }

    /// The largest cost a branch may have in the current pass.
    fn allowed(&self) -> u32 {
        if self.config.bound_passes.is_none() || self.passes.unbounded {
            u32::MAX
        } else {
            self.passes.bound
        }
    }

    pub fn stats(&self) -> &DporStats {
        &self.stats
    }

    /// The whole tree (within the preemption bound, if any) has been run.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Every Mazurkiewicz trace was run: finished, with no preemption bound.
    pub fn exhausted(&self) -> bool {
        self.done && self.config.preemption_bound.is_none()
    }

    /// `max_executions` stopped the search while branches remained.
    pub fn stopped_by_limit(&self) -> bool {
        self.stopped_by_limit
    }

    pub fn config(&self) -> &DporConfig {
        &self.config
    }

    /// Record that thread `t` (enabled) runs at the current depth.
    fn commit(&mut self, t: ThreadId, threads: &[ThreadStatus<'_>]) -> Choice {
        let d = self.depth;
        let ThreadStatus::Enabled(ev) = threads[t] else {
            unreachable!("commit is only called for enabled threads")
        };
        let (prev_enabled, base, prev) = if d == 0 {
            (false, 0, t)
        } else {
            let p = &self.stack[d - 1];
            let en = matches!(threads.get(p.thread), Some(ThreadStatus::Enabled(_)));
            (en, p.preemptions, p.thread)
        };
        let node = &mut self.stack[d];
        node.thread = t;
        if node.event != *ev {
            node.event = ev.clone();
        }
        node.prev_enabled = prev_enabled;
        // A lock's enabler is its release, which the analysis handles itself
        // (acquisitions *can* be swapped).
        let by = self.exec.take_enabler(t);
        node.enabled_by = by.filter(|_| !ev.accesses.iter().any(|a| a.kind == AccessKind::Acquire));
        node.preemptions = base + u32::from(prev_enabled && prev != t);
        // A replayed step is not a new child; the branch taken at
        // `new_from` and every step after the replayed prefix are.
        let fresh = d >= self.replay_len || d == self.new_from;
        if self.config.bound_passes.is_some() && fresh {
            // A child joins its point's sleep set when it starts, not when
            // the search leaves it (see `insert_branch`).
            let mut pending = node.pending.get();
            pending.sleep.push((t, ev.clone()));
            pending.started.push(Started {
                thread: t,
                event: ev.clone(),
                point: None,
            });
        }
        self.exec.schedule.push(t);
        self.depth += 1;
        self.stats.max_depth = self.stats.max_depth.max(self.depth as u64);
        Choice::Run(t)
    }

    fn free_choice(&mut self, threads: &[ThreadStatus<'_>]) -> Option<ThreadId> {
        let node = &self.stack[self.depth];
        let runnable =
            |t: usize| matches!(threads[t], ThreadStatus::Enabled(_)) && !node.is_asleep(t);
        if self.config.bound_passes.is_some() && self.depth > 0 {
            // Passes of growing bound: free choices never preempt when they
            // can help it, so a run costs what its branch cost.
            let last = self.stack[self.depth - 1].thread;
            if last < threads.len() && runnable(last) {
                return Some(last);
            }
        }
        match self.config.search_order {
            SearchOrder::LowestFirst => (0..threads.len()).find(|&t| runnable(t)),
            SearchOrder::HighestFirst => (0..threads.len()).rev().find(|&t| runnable(t)),
            SearchOrder::Random(_) => {
                let cands: Vec<usize> = (0..threads.len()).filter(|&t| runnable(t)).collect();
                if cands.is_empty() {
                    None
                } else {
                    Some(cands[self.rng.below(cands.len() as u64) as usize])
                }
            }
        }
    }

    /// Preemptions of `stack[..i]` followed by the sequence `v`; a switch
    /// inside `v` away from a thread that still has work counts (conservative:
    /// it may have been blocked, which would make the switch free).
    fn preemptions_of(&self, i: usize, v: &[usize]) -> u32 {
        let mut count = if i == 0 {
            0
        } else {
            self.stack[i - 1].preemptions
        };
        if i > 0
            && self.stack[i].prev_enabled
            && self.stack[i - 1].thread != self.stack[v[0]].thread
        {
            count += 1;
        }
        for w in v.windows(2) {
            let (a, b) = (self.stack[w[0]].thread, self.stack[w[1]].thread);
            if a != b {
                let has_more = self.clocks.next_same(w[0]).is_some()
                    || !self.exec.finished.get(a).copied().unwrap_or(false);
                if has_more {
                    count += 1;
                }
            }
        }
        count
    }

    fn analyze(&mut self) {
        let mut races = std::mem::take(&mut self.races);
        races.clear();
        let real_len = self.stack.len();
        for (thread, event) in self.exec.blocked.drain(..) {
            self.stack.push(Node {
                thread,
                event,
                ..Node::default()
            });
        }
        self.clocks
            .analyze(&self.stack, real_len, self.new_from, &mut races);
        for &(i, j) in &races {
            if i >= real_len {
                // Two blocked events: neither ran, nothing to reverse.
                continue;
            }
            self.stats.races += 1;
            let view = TraceView {
                trace: &self.stack,
                clocks: &self.clocks,
            };
            let mut v: Vec<usize> = (i + 1..j.min(real_len))
                .filter(|&k| !view.hb(i, k))
                .collect();
            v.push(j);
            let seq = view.sequence(v);
            if self.config.bound_passes.is_some() {
                let cost = self.preemptions_of(i, &seq.pos);
                let next = self.stack.get(i + 1).filter(|_| i + 1 < real_len);
                match insert_branch(&self.stack[i], next, seq, &view, cost) {
                    Inserted::Here => self.stats.branches += 1,
                    Inserted::Below(point) => {
                        self.stats.branches += 1;
                        if self.passes.saved.insert(point.id()) {
                            self.passes.deferred.push(point);
                        }
                    }
                    Inserted::Covered => {}
                }
                continue;
            }
            let mut pending = self.stack[i].pending.get();
            if pending
                .sleep
                .iter()
                .any(|(q, ev)| view.weak_initial(*q, ev, &seq).is_some())
            {
                continue;
            }
            let cost = if self.config.preemption_bound.is_some() {
                self.preemptions_of(i, &seq.pos)
            } else {
                0
            };
            if self
                .config
                .preemption_bound
                .is_some_and(|bound| cost > bound)
            {
                self.stats.pruned_by_bound += 1;
                continue;
            }
            if pending.wut.insert(seq, &view, cost) {
                self.stats.branches += 1;
            }
        }
        self.stack.truncate(real_len);
        self.races = races;
    }

    fn backtrack(&mut self) {
        if self.config.bound_passes.is_some() {
            return self.backtrack_in_passes();
        }
        let Some(i) = self
            .stack
            .iter()
            .rposition(|n| !n.pending.get().wut.is_empty())
        else {
            self.done = true;
            self.stack.clear();
            return;
        };
        self.take_branch(i);
    }

    /// Run next the leftmost branch of point `i`.
    fn take_branch(&mut self, i: usize) {
        self.stack.truncate(i + 1);
        let node = &mut self.stack[i];
        let explored = std::mem::take(&mut node.event);
        let passes = self.config.bound_passes.is_some();
        let branch = {
            let mut pending = node.pending.get();
            if !passes {
                pending.sleep.push((node.thread, explored));
            }
            pending.wut.pop_first().expect("non-empty wakeup tree")
        };
        node.thread = branch.thread;
        node.event = branch.event;
        self.follow = branch.sub;
        self.replay_len = i + 1;
        self.new_from = i;
    }

    /// Backtracking by passes: the deepest point on the live path with a
    /// branch within the current bound (depth-first, as plain DPOR), else
    /// the point deferred last that has one, else the next pass. Every
    /// branch is run once, in some pass: the search covers what plain DPOR
    /// covers, in another order.
    fn backtrack_in_passes(&mut self) {
        if let Some(p) = self.config.bound_passes {
            if !self.passes.unbounded && self.passes.runs >= p.pass_budget {
                self.next_pass();
            }
        }
        loop {
            let bound = self.allowed();
            let live = self.stack.iter().rposition(|n| within(&n.pending, bound));
            // Points of the live path below the one taken (all of them if
            // the search goes elsewhere) keep their branches for later.
            for d in live.map_or(0, |i| i + 1)..self.stack.len() {
                if is_open(&self.stack[d].pending)
                    && self.passes.saved.insert(point_id(&self.stack[d]))
                {
                    self.passes.deferred.push(self.stack[d].pending.clone());
                    self.stats.deferred += 1;
                }
            }
            if let Some(i) = live {
                return self.take_branch(i);
            }
            self.stack.clear();
            let saved = &mut self.passes.saved;
            self.passes.deferred.retain(|p| {
                let keep = is_open(p);
                if !keep {
                    saved.remove(&p.id());
                }
                keep
            });
            if let Some(k) = self.passes.deferred.iter().rposition(|p| within(p, bound)) {
                let point = self.passes.deferred.remove(k);
                self.passes.saved.remove(&point.id());
                self.stack = point.path();
                let i = self.stack.len() - 1;
                return self.take_branch(i);
            }
            if self.passes.deferred.is_empty() {
                self.done = true;
                return;
            }
            self.next_pass();
        }
    }

    /// Start the next pass (nothing left within this bound, or its budget
    /// spent).
    fn next_pass(&mut self) {
        let max = self.config.bound_passes.map_or(0, |p| p.max_bound);
        if self.passes.bound >= max {
            self.passes.unbounded = true;
        } else {
            self.passes.bound += 1;
        }
        self.passes.runs = 0;
    }
}

impl Strategy for Dpor {
    fn member(&self) -> String {
        "dpor".to_string()
    }

    fn divergence(&self) -> Option<&Divergence> {
        self.exec.divergence.as_ref()
    }

    fn begin_execution(&mut self) -> bool {
        if self.done {
            return false;
        }
        if let Some(max) = self.config.max_executions {
            if self.stats.executions >= max {
                self.stopped_by_limit = true;
                return false;
            }
        }
        self.stats.executions += 1;
        self.passes.runs += 1;
        self.depth = 0;
        self.exec.begin();
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        self.exec.track_enabling(threads, self.depth);
        if let Some(end) = self.exec.terminal(threads) {
            self.stats.count_end(end);
            return end;
        }
        let d = self.depth;
        if d < self.replay_len {
            let t = self.stack[d].thread;
            let at = (self.stats.executions, d, self.new_from);
            if self.exec.replays(threads, at, t, &self.stack[d].event) {
                return self.commit(t, threads);
            }
            // The recorded choice cannot run: keep this node's sleep set and
            // pending branches, drop the rest of the recorded path.
            self.stats.divergences += 1;
            self.stack.truncate(d + 1);
            self.replay_len = d;
            self.follow = WakeupTree::default();
        } else {
            let sleep = if d == 0 {
                Vec::new()
            } else {
                self.stack[d - 1].child_sleep()
            };
            let mut wut = std::mem::take(&mut self.follow);
            let next = wut.pop_first();
            let parent = match (self.config.bound_passes, d) {
                (Some(_), 1..) => {
                    let p = &self.stack[d - 1];
                    Some((p.pending.downgrade(), p.thread, p.event.clone()))
                }
                _ => None,
            };
            let node = Node {
                pending: SharedPoint::new(PointState {
                    inherited: sleep.len(),
                    sleep,
                    wut,
                    parent,
                    ..PointState::default()
                }),
                ..Node::default()
            };
            if self.config.bound_passes.is_some() {
                if d == 0 {
                    self.passes.root = Some(node.pending.clone());
                } else {
                    let parent = &self.stack[d - 1];
                    let mut pending = parent.pending.get();
                    // The child just started (a thread may have started
                    // twice here, after an infeasible branch).
                    if let Some(c) = pending
                        .started
                        .iter_mut()
                        .rev()
                        .find(|c| c.thread == parent.thread)
                    {
                        c.point = Some(node.pending.clone());
                    }
                }
            }
            if let Some(branch) = next {
                if matches!(threads.get(branch.thread), Some(ThreadStatus::Enabled(_)))
                    && !node.is_asleep(branch.thread)
                {
                    self.follow = branch.sub;
                    self.stack.truncate(d);
                    self.stack.push(node);
                    return self.commit(branch.thread, threads);
                }
                // Infeasible reversal (a non-lock blocking primitive): give up
                // on the rest of this sequence and continue freely.
                self.stats.divergences += 1;
            }
            self.stack.truncate(d);
            self.stack.push(node);
        }
        match self.free_choice(threads) {
            Some(t) => self.commit(t, threads),
            None => {
                self.stack.truncate(d);
                self.stats.sleep_blocked += 1;
                Choice::SleepBlocked
            }
        }
    }

    fn end_execution(&mut self, _outcome: Outcome) {
        // A failed or aborted run is analysed like a complete one: its races
        // are real, and skipping them would lose branches.
        self.stack.truncate(self.depth);
        let n = self.stack.iter().map(|n| n.thread + 1).max().unwrap_or(0);
        self.exec.assume_unfinished(n);
        self.analyze();
        self.backtrack();
    }

    fn schedule(&self) -> &[ThreadId] {
        &self.exec.schedule
    }

    fn covered_every_trace(&self) -> Option<bool> {
        Some(self.exhausted())
    }
}

/// Where [`insert_branch`] put a branch.
enum Inserted {
    /// Covered by what runs anyway.
    Covered,
    /// Into the point it was found for.
    Here,
    /// Into this point below a later child of it, off the current path.
    Below(SharedPoint),
}

/// Insert the reversal `seq` at `node`'s point (`next`: the node after it
/// on the path, if the run went on), in a search by passes. Optimal DPOR inserts it while exploring the child that point
/// took; the children started there before it were explored before it (in
/// the sleep set: skip what they cover), and those started after it are, in
/// DPOR's order, still pending branches: the sequence goes into the first
/// whose subtree it can start, down to a point where no started child can
/// take it, and into that point's wakeup tree.
fn insert_branch(
    node: &Node,
    next: Option<&Node>,
    mut seq: Sequence,
    view: &TraceView<'_, Node>,
    cost: u32,
) -> Inserted {
    let mut point = node.pending.clone();
    let mut mine = Some(node.thread);
    loop {
        let next = {
            let mut pending = point.get();
            let after = match mine {
                Some(t) => {
                    // This path's child: the one leading to `next`, else
                    // the latest of its thread (the run ended there).
                    let k = pending
                        .started
                        .iter()
                        .rposition(|c| match next {
                            Some(n) => c.point.as_ref().is_some_and(|p| p.id() == n.pending.id()),
                            None => c.thread == t,
                        })
                        .map_or(pending.started.len(), |k| k + 1);
                    let earlier = pending.inherited + k.saturating_sub(1);
                    if pending.sleep[..earlier.min(pending.sleep.len())]
                        .iter()
                        .any(|(q, ev)| view.weak_initial(*q, ev, &seq).is_some())
                    {
                        return Inserted::Covered;
                    }
                    k
                }
                None => 0,
            };
            let hit = pending.started[after..].iter().find_map(|c| {
                view.weak_initial(c.thread, &c.event, &seq)
                    .map(|k| (k, c.point.clone()))
            });
            match hit {
                None => {
                    if !pending.wut.insert(seq, view, cost) {
                        return Inserted::Covered;
                    }
                    if mine.is_some() {
                        return Inserted::Here;
                    }
                    drop(pending);
                    return Inserted::Below(point);
                }
                Some((k, child)) => {
                    if let Some(k) = k {
                        seq.consume(k);
                    }
                    match child {
                        Some(child) if !seq.is_empty() => child,
                        // The child's run ended there, or it covers all of
                        // `seq`: an explored continuation extends it.
                        _ => return Inserted::Covered,
                    }
                }
            }
        };
        point = next;
        mine = None;
    }
}
