//! Guided replay for shrinking counterexamples: follow a planned list of
//! thread choices while it can be followed, then never preempt (the thread
//! that ran last continues while it can, otherwise the lowest enabled one
//! runs). It counts the preemptions and context switches of what actually
//! ran, so a shrinker can compare schedules.
//!
//! Public API: [`Guided::new`] (the plan), [`SwitchCounts`] through
//! [`crate::strategy::Strategy::switch_counts`].

use crate::event::ThreadId;
use crate::strategy::random::terminal;
use crate::strategy::{Choice, Outcome, Strategy, ThreadStatus};

/// Preemptions (switching away from a thread that could continue) and
/// context switches (any change of running thread) of one execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SwitchCounts {
    pub preemptions: u32,
    pub switches: u32,
}

/// Follows a plan, then runs non-preemptively; one execution.
#[derive(Clone, Debug)]
pub struct Guided {
    plan: Vec<ThreadId>,
    pos: usize,
    /// The plan could not be followed at some step: it is abandoned.
    diverged: bool,
    runs_left: u32,
    schedule: Vec<ThreadId>,
    counts: SwitchCounts,
}

impl Guided {
    pub fn new(plan: Vec<ThreadId>) -> Self {
        Guided {
            plan,
            pos: 0,
            diverged: false,
            runs_left: 1,
            schedule: Vec::new(),
            counts: SwitchCounts::default(),
        }
    }

    /// Whether the plan was followed to its end.
    pub fn followed(&self) -> bool {
        !self.diverged && self.pos == self.plan.len()
    }
}

impl Strategy for Guided {
    fn member(&self) -> String {
        "shrinking".to_string()
    }

    fn begin_execution(&mut self) -> bool {
        if self.runs_left == 0 {
            return false;
        }
        self.runs_left -= 1;
        self.pos = 0;
        self.diverged = false;
        self.schedule.clear();
        self.counts = SwitchCounts::default();
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let enabled = |t: ThreadId| matches!(threads.get(t), Some(ThreadStatus::Enabled(_)));
        let Some(lowest) = (0..threads.len()).find(|&t| enabled(t)) else {
            return terminal(threads);
        };
        let prev = self.schedule.last().copied();
        let mut pick = None;
        if !self.diverged && self.pos < self.plan.len() {
            let t = self.plan[self.pos];
            if enabled(t) {
                self.pos += 1;
                pick = Some(t);
            } else {
                self.diverged = true;
            }
        }
        let t = pick.unwrap_or_else(|| prev.filter(|&p| enabled(p)).unwrap_or(lowest));
        if let Some(p) = prev {
            if p != t {
                self.counts.switches += 1;
                if enabled(p) {
                    self.counts.preemptions += 1;
                }
            }
        }
        self.schedule.push(t);
        Choice::Run(t)
    }

    fn end_execution(&mut self, _outcome: Outcome) {}

    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }

    fn switch_counts(&self) -> Option<SwitchCounts> {
        Some(self.counts)
    }
}

/// Positions where `schedule` switches threads, ascending: its prefixes
/// ending there are the plans that drop every switch from that one on.
pub fn switch_points(schedule: &[ThreadId]) -> Vec<usize> {
    (1..schedule.len())
        .filter(|&i| schedule[i] != schedule[i - 1])
        .collect()
}

/// Candidate plans that may shrink `schedule`: for each context switch,
/// latest first, the prefix before it, so the thread that ran continues
/// instead (the rest of the run then never preempts); and for each block of
/// steps, the schedule with that block moved to just before the next block
/// of the same thread (removing the switch into it and out of it).
pub fn shrink_candidates(schedule: &[ThreadId]) -> Vec<Vec<ThreadId>> {
    let mut blocks: Vec<(ThreadId, usize, usize)> = Vec::new();
    for (i, &t) in schedule.iter().enumerate() {
        match blocks.last_mut() {
            Some(b) if b.0 == t => b.2 = i + 1,
            _ => blocks.push((t, i, i + 1)),
        }
    }
    let mut out = Vec::new();
    for b in blocks.iter().skip(1).rev() {
        out.push(schedule[..b.1].to_vec());
    }
    for (k, b) in blocks.iter().enumerate() {
        // Move block `k` later, to join the next block of its thread.
        let Some(next) = (k + 1..blocks.len()).find(|&m| blocks[m].0 == b.0) else {
            continue;
        };
        if next == k + 1 {
            continue;
        }
        let mut plan = schedule[..b.1].to_vec();
        plan.extend_from_slice(&schedule[b.2..blocks[next].1]);
        plan.extend_from_slice(&schedule[b.1..b.2]);
        plan.extend_from_slice(&schedule[blocks[next].1..]);
        out.push(plan);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn counts_preemptions_and_switches_and_stops_preempting_after_the_plan() {
        let e = Event::default();
        let both = [ThreadStatus::Enabled(&e), ThreadStatus::Enabled(&e)];
        let mut g = Guided::new(vec![0, 1, 0]);
        assert!(g.begin_execution());
        let picks: Vec<Choice> = (0..5).map(|_| g.choose(&both)).collect();
        assert_eq!(
            picks,
            [0, 1, 0, 0, 0].map(Choice::Run).to_vec(),
            "after the plan the last thread continues"
        );
        assert!(g.followed());
        assert_eq!(
            g.switch_counts(),
            Some(SwitchCounts {
                preemptions: 2,
                switches: 2
            })
        );
        // A switch away from a finished thread is not a preemption.
        let fin = [ThreadStatus::Finished, ThreadStatus::Enabled(&e)];
        assert_eq!(g.choose(&fin), Choice::Run(1));
        assert_eq!(g.switch_counts().unwrap().preemptions, 2);
        assert_eq!(g.switch_counts().unwrap().switches, 3);
    }

    #[test]
    fn candidates_drop_or_move_context_switches() {
        let s = vec![0, 0, 1, 1, 0, 1];
        let c = shrink_candidates(&s);
        assert!(c.contains(&vec![0, 0, 1, 1, 0]));
        assert!(c.contains(&vec![0, 0]));
        // Block [1, 1] moved to join thread 1's last block.
        assert!(c.contains(&vec![0, 0, 0, 1, 1, 1]));
    }
}
