//! The [`Strategy`] implementation of optimal DPOR: prefix replay, wakeup-tree
//! following, free choices, and the end-of-execution race analysis and
//! backtracking.

use super::execution::Execution;
use super::path::Node;
use super::race::{TraceClocks, TraceView};
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
        self.exec.schedule.push(t);
        self.depth += 1;
        self.stats.max_depth = self.stats.max_depth.max(self.depth as u64);
        Choice::Run(t)
    }

    fn free_choice(&mut self, threads: &[ThreadStatus<'_>]) -> Option<ThreadId> {
        let node = &self.stack[self.depth];
        let runnable =
            |t: usize| matches!(threads[t], ThreadStatus::Enabled(_)) && !node.is_asleep(t);
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
            if self.stack[i]
                .sleep
                .iter()
                .any(|(q, ev)| view.weak_initial(*q, ev, &seq).is_some())
            {
                continue;
            }
            if let Some(bound) = self.config.preemption_bound {
                if self.preemptions_of(i, &seq.pos) > bound {
                    self.stats.pruned_by_bound += 1;
                    continue;
                }
            }
            let mut wut = std::mem::take(&mut self.stack[i].wut);
            let view = TraceView {
                trace: &self.stack,
                clocks: &self.clocks,
            };
            if wut.insert(seq, &view) {
                self.stats.branches += 1;
            }
            self.stack[i].wut = wut;
        }
        self.stack.truncate(real_len);
        self.races = races;
    }

    fn backtrack(&mut self) {
        let Some(i) = self.stack.iter().rposition(|n| !n.wut.is_empty()) else {
            self.done = true;
            self.stack.clear();
            return;
        };
        self.stack.truncate(i + 1);
        let node = &mut self.stack[i];
        let explored = std::mem::take(&mut node.event);
        node.sleep.push((node.thread, explored));
        let branch = node.wut.pop_first().expect("non-empty wakeup tree");
        node.thread = branch.thread;
        node.event = branch.event;
        self.follow = branch.sub;
        self.replay_len = i + 1;
        self.new_from = i;
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
            let mut node = Node {
                sleep: if d == 0 {
                    Vec::new()
                } else {
                    self.stack[d - 1].child_sleep()
                },
                wut: std::mem::take(&mut self.follow),
                ..Node::default()
            };
            if let Some(branch) = node.wut.pop_first() {
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
