//! Bounded partial-order reduction (BPOR: Coons, Musuvathi, McKinley,
//! "Bounded Partial-Order Reduction", OOPSLA 2013): DPOR with persistent
//! backtrack sets (Flanagan and Godefroid, POPL 2005) that is sound for a
//! preemption bound.
//!
//! Why not optimal DPOR plus the bound: pruning a wakeup-tree branch because
//! it preempts too much loses traces that a *different* schedule of the same
//! trace reaches within the bound, and sleep sets then forbid the schedule
//! that would have reached it. BPOR compensates in two ways:
//! - no sleep sets;
//! - for every race `(i, j)` it also adds `thread(j)` as a backtrack point
//!   at the last context switch before `i` (the start of the block of
//!   steps that ends at `i - 1`), where scheduling it costs no more
//!   preemptions than the switch that already happened there.
//!
//! Free choices never preempt: the thread that ran last continues while it
//! can; when it cannot, the lowest enabled thread runs. So every schedule
//! run has at most `bound` preemptions, and every trace reachable within the
//! bound is covered (checked against brute force restricted to the bound).
//!
//! With no bound this is plain persistent-set DPOR: complete, but with more
//! executions than optimal DPOR. [`BoundedDpor::complete`] is also true for
//! a bounded search that never had to drop a backtrack point for the bound:
//! it then ran exactly what the unbounded search would, so every
//! Mazurkiewicz trace was covered.

use super::execution::Execution;
use super::path::Node;
use super::race::TraceClocks;
use super::DporStats;
use crate::event::{AccessKind, Event, ThreadId};
use crate::strategy::{Choice, Divergence, Outcome, Strategy, ThreadStatus};

/// What BPOR keeps per scheduling point besides the trace node.
#[derive(Clone, Debug, Default)]
struct Point {
    /// Threads enabled here, ascending.
    enabled: Vec<ThreadId>,
    /// Threads to try here; those already tried (or pruned) are in `done`.
    backtrack: Vec<ThreadId>,
    done: Vec<ThreadId>,
    /// Preemptions of the schedule up to and including this step.
    preemptions: u32,
}

/// Preemption-bounded persistent-set DPOR (see the module docs).
#[derive(Debug)]
pub struct BoundedDpor {
    bound: Option<u32>,
    max_executions: Option<u64>,
    nodes: Vec<Node>,
    points: Vec<Point>,
    depth: usize,
    replay_len: usize,
    /// Races whose later event lies before this position were handled by an
    /// earlier execution (same prefix).
    new_from: usize,
    done: bool,
    stopped_by_limit: bool,
    stats: DporStats,
    exec: Execution,
    clocks: TraceClocks,
    races: Vec<(usize, usize)>,
}

impl BoundedDpor {
    /// `bound`: the most preemptions a schedule may have (`None`: no bound).
    pub fn new(bound: Option<u32>, max_executions: Option<u64>) -> Self {
        BoundedDpor {
            bound,
            max_executions,
            nodes: Vec::new(),
            points: Vec::new(),
            depth: 0,
            replay_len: 0,
            new_from: 0,
            done: false,
            stopped_by_limit: false,
            stats: DporStats::default(),
            exec: Execution::default(),
            clocks: TraceClocks::default(),
            races: Vec::new(),
        }
    }

    pub fn bound(&self) -> Option<u32> {
        self.bound
    }

    pub fn stats(&self) -> &DporStats {
        &self.stats
    }

    /// Every schedule within the bound was covered.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Finished without ever dropping a backtrack point for the bound (or
    /// with no bound): every Mazurkiewicz trace was covered.
    pub fn complete(&self) -> bool {
        self.done && self.stats.pruned_by_bound == 0
    }

    pub fn stopped_by_limit(&self) -> bool {
        self.stopped_by_limit
    }

    /// Whether running `t` at point `d` is a preemption: the thread that ran
    /// at `d - 1` could have continued.
    fn preempts(&self, d: usize, t: ThreadId) -> bool {
        d > 0 && {
            let prev = self.nodes[d - 1].thread;
            prev != t && self.points[d].enabled.binary_search(&prev).is_ok()
        }
    }

    /// Record that the enabled thread `t` runs at the current depth.
    fn commit(&mut self, t: ThreadId, threads: &[ThreadStatus<'_>]) -> Choice {
        let d = self.depth;
        let ThreadStatus::Enabled(ev) = threads[t] else {
            unreachable!("commit is only called for enabled threads")
        };
        let by = self.exec.take_enabler(t);
        let base = if d == 0 {
            0
        } else {
            self.points[d - 1].preemptions
        };
        let preemptions = base + u32::from(self.preempts(d, t));
        let node = &mut self.nodes[d];
        node.thread = t;
        if node.event != *ev {
            node.event = ev.clone();
        }
        // A lock's enabler is its release, which the race analysis handles.
        node.enabled_by = by.filter(|_| !ev.accesses.iter().any(|a| a.kind == AccessKind::Acquire));
        let point = &mut self.points[d];
        point.preemptions = preemptions;
        if !point.done.contains(&t) {
            point.done.push(t);
        }
        if !point.backtrack.contains(&t) {
            point.backtrack.push(t);
        }
        self.exec.schedule.push(t);
        self.depth += 1;
        self.stats.max_depth = self.stats.max_depth.max(self.depth as u64);
        Choice::Run(t)
    }

    /// The non-preemptive default: the last thread continues if it can,
    /// otherwise the lowest enabled one.
    fn default_choice(&self, threads: &[ThreadStatus<'_>]) -> ThreadId {
        let enabled = |t: usize| matches!(threads.get(t), Some(ThreadStatus::Enabled(_)));
        if let Some(prev) = self.depth.checked_sub(1).map(|d| self.nodes[d].thread) {
            if enabled(prev) {
                return prev;
            }
        }
        (0..threads.len())
            .find(|&t| enabled(t))
            .expect("called with an enabled thread")
    }

    /// Add `p` to the backtrack set of point `i`, or every thread enabled
    /// there if `p` is not.
    fn add_backtrack(&mut self, i: usize, p: ThreadId) {
        let point = &mut self.points[i];
        if point.enabled.binary_search(&p).is_ok() {
            if !point.backtrack.contains(&p) {
                point.backtrack.push(p);
                self.stats.branches += 1;
            }
        } else {
            for k in 0..point.enabled.len() {
                let q = point.enabled[k];
                if !point.backtrack.contains(&q) {
                    point.backtrack.push(q);
                    self.stats.branches += 1;
                }
            }
        }
    }

    fn analyze(&mut self) {
        let mut races = std::mem::take(&mut self.races);
        races.clear();
        let real_len = self.nodes.len();
        for (thread, event) in self.exec.blocked.drain(..) {
            self.nodes.push(Node {
                thread,
                event,
                ..Node::default()
            });
        }
        self.clocks
            .analyze(&self.nodes, real_len, self.new_from, &mut races);
        self.stats.races += races.iter().filter(|&&(i, _)| i < real_len).count() as u64;
        let mut reversals: Vec<(usize, usize)> = races
            .iter()
            .copied()
            .filter(|&(i, _)| i < real_len)
            .collect();
        let races_end = reversals.len();
        if self.bound.is_some() {
            self.enabling_edges(real_len, &mut reversals);
        }
        for (n, &(i, j)) in reversals.iter().enumerate() {
            let p = self.nodes[j].thread;
            let blocking = n >= races_end;
            if blocking && self.points[i].enabled.binary_search(&p).is_err() {
                // A blocking dependence only matters where `p` could run.
                continue;
            }
            self.add_backtrack(i, p);
            if self.bound.is_some() && i > 0 {
                // The start of the block that ends at `i - 1`.
                let mut c = i - 1;
                while c > 0 && self.nodes[c].thread == self.nodes[c - 1].thread {
                    c -= 1;
                }
                self.add_backtrack(c, p);
            }
        }
        self.nodes.truncate(real_len);
        self.races = races;
    }

    /// Bound dependences of blocking: a lock release and the next
    /// acquisition of that lock by another thread, or a step that had been
    /// blocked (condition, event) and the steps of other threads it
    /// conflicts with or was enabled by, are not races to reverse, but
    /// running the later thread earlier can make it block, and a switch away
    /// from a blocked thread is free. Under a bound that can be the only way
    /// to reach a trace (both cases found by the differential test), so
    /// these pairs are backtracked like races.
    fn enabling_edges(&self, real_len: usize, out: &mut Vec<(usize, usize)>) {
        let mut last_release: Vec<(u64, usize)> = Vec::new();
        for j in 0..real_len {
            let node = &self.nodes[j];
            if node.enabled_by.is_some() && j >= self.new_from {
                // Which writes kept the thread blocked, and when it could
                // have run, depends on values: every conflicting step of
                // another thread before it is a candidate.
                for i in 0..j {
                    let other = &self.nodes[i];
                    if other.thread != node.thread
                        && (other.event.conflicts(&node.event) || node.enabled_by == Some(i))
                    {
                        out.push((i, j));
                    }
                }
            }
            for a in &node.event.accesses {
                match a.kind {
                    AccessKind::Acquire if j >= self.new_from => {
                        if let Some(&(_, r)) = last_release.iter().find(|(o, _)| *o == a.obj) {
                            if self.nodes[r].thread != node.thread {
                                out.push((r, j));
                            }
                        }
                    }
                    AccessKind::Release => match last_release.iter_mut().find(|(o, _)| *o == a.obj)
                    {
                        Some(e) => e.1 = j,
                        None => last_release.push((a.obj, j)),
                    },
                    _ => {}
                }
            }
        }
    }

    /// Move to the deepest point with an untried thread within the bound.
    fn backtrack(&mut self) {
        for i in (0..self.points.len()).rev() {
            let base = if i == 0 {
                0
            } else {
                self.points[i - 1].preemptions
            };
            let mut k = 0;
            while k < self.points[i].backtrack.len() {
                let q = self.points[i].backtrack[k];
                k += 1;
                if self.points[i].done.contains(&q) {
                    continue;
                }
                self.points[i].done.push(q);
                let cost = base + u32::from(self.preempts(i, q));
                if self.bound.is_some_and(|b| cost > b) {
                    self.stats.pruned_by_bound += 1;
                    continue;
                }
                self.nodes.truncate(i + 1);
                self.points.truncate(i + 1);
                self.nodes[i].thread = q;
                self.nodes[i].event = Event::default();
                self.replay_len = i + 1;
                self.new_from = i;
                return;
            }
        }
        self.done = true;
        self.nodes.clear();
        self.points.clear();
    }
}

impl Strategy for BoundedDpor {
    fn member(&self) -> String {
        match self.bound() {
            Some(k) => format!("dpor bound {k}"),
            None => "dpor".to_string(),
        }
    }

    fn divergence(&self) -> Option<&Divergence> {
        self.exec.divergence.as_ref()
    }

    fn begin_execution(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self
            .max_executions
            .is_some_and(|m| self.stats.executions >= m)
        {
            self.stopped_by_limit = true;
            return false;
        }
        self.stats.executions += 1;
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
        let enabled: Vec<ThreadId> = (0..threads.len())
            .filter(|&t| matches!(threads[t], ThreadStatus::Enabled(_)))
            .collect();
        if d < self.replay_len {
            self.points[d].enabled = enabled;
            let t = self.nodes[d].thread;
            let at = (self.stats.executions, d, self.new_from);
            if self.exec.replays(threads, at, t, &self.nodes[d].event) {
                return self.commit(t, threads);
            }
            // The recorded choice cannot run (nondeterministic program):
            // keep this point's sets, drop the rest of the recorded path.
            self.stats.divergences += 1;
            self.nodes.truncate(d + 1);
            self.points.truncate(d + 1);
            self.replay_len = d;
        } else {
            self.nodes.truncate(d);
            self.points.truncate(d);
            self.nodes.push(Node::default());
            self.points.push(Point {
                enabled,
                ..Point::default()
            });
        }
        let t = self.default_choice(threads);
        self.commit(t, threads)
    }

    fn end_execution(&mut self, _outcome: Outcome) {
        self.nodes.truncate(self.depth);
        self.points.truncate(self.depth);
        let n = self.nodes.iter().map(|n| n.thread + 1).max().unwrap_or(0);
        self.exec.assume_unfinished(n);
        self.analyze();
        self.backtrack();
    }

    fn schedule(&self) -> &[ThreadId] {
        &self.exec.schedule
    }

    fn covered_every_trace(&self) -> Option<bool> {
        Some(self.complete())
    }
}
