//! PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
//! Nagarakatte, "A Randomized Scheduler with Probabilistic Guarantees of
//! Finding Bugs", ASPLOS 2010).
//!
//! Each execution gives every thread a random distinct high priority and
//! picks `depth - 1` random *change points* among the first `k` steps; the
//! enabled thread of highest priority always runs, and at the `i`-th change
//! point the running thread drops to priority `depth - 1 - i`, below every
//! initial one. A bug of depth `d` among `n` threads and `k` steps is found
//! by one execution with probability at least `1 / (n · k^(d-1))`.
//!
//! `k` is not known in advance: it starts at [`PCT_INITIAL_STEPS`] and is
//! then the longest execution seen so far.
//!
//! Public API: [`Pct::new`] (`seed`, `depth`, `max_attempts`),
//! [`Pct::finished`], [`Pct::estimated_steps`].

use crate::event::ThreadId;
use crate::rng::SplitMix64;
use crate::strategy::random::terminal;
use crate::strategy::{Choice, Outcome, Strategy, ThreadStatus};

/// Step count assumed before any execution has been seen.
pub const PCT_INITIAL_STEPS: u64 = 64;

/// Initial priorities live above this, lowered ones below it.
const HIGH: u64 = 1 << 40;

#[derive(Clone, Debug)]
pub struct Pct {
    rng: SplitMix64,
    depth: u32,
    max_attempts: u64,
    executions: u64,
    /// Estimated steps per execution (`k`).
    k: u64,
    /// Priority of each thread seen in this execution.
    priority: Vec<u64>,
    /// Sorted step numbers at which the running thread is lowered.
    change_points: Vec<u64>,
    step: u64,
    schedule: Vec<ThreadId>,
}

impl Pct {
    /// `depth` ≥ 1 is the bug depth targeted (1 = no priority changes).
    pub fn new(seed: u64, depth: u32, max_attempts: u64) -> Self {
        Pct {
            rng: SplitMix64::new(seed),
            depth: depth.max(1),
            max_attempts,
            executions: 0,
            k: PCT_INITIAL_STEPS,
            priority: Vec::new(),
            change_points: Vec::new(),
            step: 0,
            schedule: Vec::new(),
        }
    }

    pub fn finished(&self) -> bool {
        self.executions >= self.max_attempts
    }

    pub fn executions(&self) -> u64 {
        self.executions
    }

    pub fn estimated_steps(&self) -> u64 {
        self.k
    }

    /// Give threads that appeared since the last point their random
    /// priorities; ties are impossible because the low bits hold the id.
    fn admit(&mut self, n: usize) {
        while self.priority.len() < n {
            let t = self.priority.len() as u64;
            let r = self.rng.next_u64() >> 45; // 19 random bits
            self.priority.push(HIGH + (r << 20) + t);
        }
    }
}

impl Strategy for Pct {
    fn member(&self) -> String {
        format!("pct depth {}", self.depth)
    }

    fn begin_execution(&mut self) -> bool {
        if self.finished() {
            return false;
        }
        self.executions += 1;
        self.priority.clear();
        self.schedule.clear();
        self.step = 0;
        self.change_points.clear();
        for _ in 1..self.depth {
            self.change_points.push(1 + self.rng.below(self.k));
        }
        self.change_points.sort_unstable();
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        self.admit(threads.len());
        let best = threads
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, ThreadStatus::Enabled(_)))
            .max_by_key(|(t, _)| self.priority[*t])
            .map(|(t, _)| t);
        let Some(mut t) = best else {
            return terminal(threads);
        };
        self.step += 1;
        // Change points hit at this step lower the thread about to run;
        // the highest enabled thread is then chosen again.
        let mut lowered = false;
        for (i, &cp) in self.change_points.iter().enumerate() {
            if cp == self.step {
                self.priority[t] = u64::from(self.depth) - 1 - i as u64;
                lowered = true;
            }
        }
        if lowered {
            t = threads
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, ThreadStatus::Enabled(_)))
                .max_by_key(|(u, _)| self.priority[*u])
                .map(|(u, _)| u)
                .expect("an enabled thread exists");
        }
        self.schedule.push(t);
        Choice::Run(t)
    }

    fn end_execution(&mut self, _outcome: Outcome) {
        self.k = self.k.max(self.step).max(1);
        if self.executions == 1 {
            // The first run measures the program: use its length, not the guess.
            self.k = self.step.max(1);
        }
    }

    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }
}
