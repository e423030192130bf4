//! Random exploration: at every point, a uniformly random enabled thread.
//!
//! Public API: [`RandomStrategy::new`] (`seed`, `max_attempts`: how many
//! executions `begin_execution` allows), [`RandomStrategy::finished`] (all
//! attempts were run). Deterministic for a seed.

use crate::event::ThreadId;
use crate::rng::SplitMix64;
use crate::strategy::{Choice, Outcome, Strategy, ThreadStatus};

#[derive(Clone, Debug)]
pub struct RandomStrategy {
    rng: SplitMix64,
    max_attempts: u64,
    executions: u64,
    schedule: Vec<ThreadId>,
    enabled: Vec<ThreadId>,
}

impl RandomStrategy {
    pub fn new(seed: u64, max_attempts: u64) -> Self {
        RandomStrategy {
            rng: SplitMix64::new(seed),
            max_attempts,
            executions: 0,
            schedule: Vec::new(),
            enabled: Vec::new(),
        }
    }

    pub fn executions(&self) -> u64 {
        self.executions
    }

    /// Every one of `max_attempts` executions was begun.
    pub fn finished(&self) -> bool {
        self.executions >= self.max_attempts
    }
}

/// The terminal answer when no thread is enabled.
pub(crate) fn terminal(threads: &[ThreadStatus<'_>]) -> Choice {
    if threads.iter().all(|s| matches!(s, ThreadStatus::Finished)) {
        Choice::AllFinished
    } else {
        Choice::Deadlock
    }
}

impl Strategy for RandomStrategy {
    fn member(&self) -> String {
        "random".to_string()
    }

    fn begin_execution(&mut self) -> bool {
        if self.finished() {
            return false;
        }
        self.executions += 1;
        self.schedule.clear();
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        self.enabled.clear();
        self.enabled.extend(
            threads
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, ThreadStatus::Enabled(_)))
                .map(|(t, _)| t),
        );
        if self.enabled.is_empty() {
            return terminal(threads);
        }
        let t = self.enabled[self.rng.below(self.enabled.len() as u64) as usize];
        self.schedule.push(t);
        Choice::Run(t)
    }

    fn end_execution(&mut self, _outcome: Outcome) {}

    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }
}
