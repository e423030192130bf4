//! The default search and the portfolio: iterative preemption bounding
//! ([`IterativeDpor`]) interleaved with randomized runs (uniform random, or
//! PCT of a given depth).
//!
//! Why both: each bounded DPOR pass is depth-first, so with many threads it
//! can spend its whole budget on the orders of threads that do not matter
//! before it preempts the one that does (a 100-thread two-stage program),
//! while a random run reaches that preemption with good probability. The
//! randomized runs never decide a verdict: only the DPOR passes do, so the
//! search is exhausted exactly when the DPOR passes are, and a failure found
//! by a random run is as real as any (the driver replays it).
//!
//! Schedule: rounds of [`DPOR_SLICE`] DPOR executions followed by one
//! randomized run, the samplers taking turns, until [`SAMPLE_CAP`]
//! randomized runs were made; then DPOR alone. DPOR goes first because
//! most bugs show within its first few executions; the cap bounds what the
//! sampling adds to the cost of a proof on a bug-free program.

use crate::event::ThreadId;
use crate::strategy::dpor::{IterativeDpor, PassBound};
use crate::strategy::pct::Pct;
use crate::strategy::random::RandomStrategy;
use crate::strategy::{Choice, Divergence, Outcome, Strategy, ThreadStatus};

/// DPOR executions per round, before one randomized run.
pub const DPOR_SLICE: u64 = 2;
/// Randomized runs in total; after them DPOR runs alone.
pub const SAMPLE_CAP: u64 = 256;

/// A randomized member of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// A uniformly random enabled thread at every point.
    Random,
    /// PCT targeting bugs of this depth.
    Pct(u32),
}

/// Which member runs the current execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    Dpor,
    Sampler(usize),
}

/// DPOR passes of growing bounds interleaved with randomized runs.
pub struct Mixed {
    dpor: IterativeDpor,
    samplers: Vec<Box<dyn Strategy + Send>>,
    current: Member,
    /// DPOR executions since the last randomized run.
    dpor_in_round: u64,
    sampled: u64,
    next_sampler: usize,
    /// Executions begun, all members together.
    executions: u64,
    /// The first divergence of the DPOR passes, numbered among all executions.
    divergence: Option<Divergence>,
}

impl std::fmt::Debug for Mixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixed")
            .field("dpor", &self.dpor)
            .field("samplers", &self.samplers.len())
            .field("current", &self.current)
            .field("sampled", &self.sampled)
            .finish_non_exhaustive()
    }
}

impl Mixed {
    /// `dpor` interleaved with `samplers` (each seeded from `seed`); with no
    /// sampler this is `dpor` alone.
    pub fn new(dpor: IterativeDpor, samplers: &[Sampler], seed: u64) -> Self {
        let samplers = samplers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // Distinct streams per member, so two members never run the
                // same schedules.
                let seed = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let member: Box<dyn Strategy + Send> = match *s {
                    Sampler::Random => Box::new(RandomStrategy::new(seed, u64::MAX)),
                    Sampler::Pct(depth) => Box::new(Pct::new(seed, depth, u64::MAX)),
                };
                member
            })
            .collect();
        Mixed {
            dpor,
            samplers,
            current: Member::Dpor,
            dpor_in_round: 0,
            sampled: 0,
            next_sampler: 0,
            executions: 0,
            divergence: None,
        }
    }

    /// Randomized runs made so far.
    pub fn sampled(&self) -> u64 {
        self.sampled
    }

    /// The DPOR passes covered every Mazurkiewicz trace.
    pub fn exhausted(&self) -> bool {
        self.dpor.exhausted()
    }

    fn active(&mut self) -> &mut dyn Strategy {
        match self.current {
            Member::Dpor => &mut self.dpor,
            Member::Sampler(i) => self.samplers[i].as_mut(),
        }
    }

    fn active_ref(&self) -> &dyn Strategy {
        match self.current {
            Member::Dpor => &self.dpor,
            Member::Sampler(i) => self.samplers[i].as_ref(),
        }
    }

    fn sampler_turn(&self) -> bool {
        // No sampling once DPOR is over: the search ends with it, and a
        // bug-free program's proof should cost no more than it must.
        !self.samplers.is_empty()
            && self.sampled < SAMPLE_CAP
            && self.dpor_in_round >= DPOR_SLICE
            && !self.dpor.finished()
    }
}

impl Strategy for Mixed {
    fn begin_execution(&mut self) -> bool {
        if self.sampler_turn() {
            let i = self.next_sampler;
            self.next_sampler = (i + 1) % self.samplers.len();
            if self.samplers[i].begin_execution() {
                self.current = Member::Sampler(i);
                self.dpor_in_round = 0;
                self.sampled += 1;
                self.executions += 1;
                return true;
            }
        }
        // The search ends with DPOR: sampling alone proves nothing.
        self.current = Member::Dpor;
        if !self.dpor.begin_execution() {
            return false;
        }
        self.dpor_in_round += 1;
        self.executions += 1;
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        self.active().choose(threads)
    }

    fn end_execution(&mut self, outcome: Outcome) {
        self.active().end_execution(outcome);
        if self.current == Member::Dpor && self.divergence.is_none() {
            // DPOR keeps its first divergence, noted during the execution
            // that just ended: renumber it among all executions.
            let n = self.executions;
            self.divergence = self.dpor.divergence().cloned().map(|mut d| {
                d.execution = n;
                d
            });
        }
    }

    fn schedule(&self) -> &[ThreadId] {
        self.active_ref().schedule()
    }

    fn covered_every_trace(&self) -> Option<bool> {
        Some(self.dpor.exhausted())
    }

    /// Only a DPOR execution has a bound; a randomized run has none.
    fn pass_bound(&self) -> Option<PassBound> {
        match self.current {
            Member::Dpor => self.dpor.pass_bound(),
            Member::Sampler(_) => None,
        }
    }

    fn repeated_executions(&self) -> u64 {
        self.dpor.repeated_executions()
    }

    fn member(&self) -> String {
        self.active_ref().member()
    }

    fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, Event, Key};
    use crate::strategy::dpor::SearchOrder;

    /// Drive `s` over `n` threads that each write one shared object twice;
    /// returns the member of every execution.
    fn drive(s: &mut Mixed, n: usize) -> Vec<String> {
        let mut members = Vec::new();
        while s.begin_execution() {
            members.push(s.member());
            let mut left = vec![2u32; n];
            let events: Vec<Event> = (0..n)
                .map(|_| Event::new(vec![Access::write(1, Key::Any)], 0))
                .collect();
            loop {
                let status: Vec<ThreadStatus<'_>> = (0..n)
                    .map(|t| {
                        if left[t] == 0 {
                            ThreadStatus::Finished
                        } else {
                            ThreadStatus::Enabled(&events[t])
                        }
                    })
                    .collect();
                match s.choose(&status) {
                    Choice::Run(t) => left[t] -= 1,
                    _ => break,
                }
            }
            s.end_execution(Outcome::Passed);
        }
        members
    }

    #[test]
    fn sampling_never_decides_and_dpor_alone_ends_the_search() {
        let dpor = IterativeDpor::new(2, SearchOrder::LowestFirst);
        let mut plain = Mixed::new(IterativeDpor::new(2, SearchOrder::LowestFirst), &[], 7);
        let mut mixed = Mixed::new(dpor, &[Sampler::Random, Sampler::Pct(2)], 7);
        let alone = drive(&mut plain, 3);
        let members = drive(&mut mixed, 3);
        assert!(plain.exhausted() && mixed.exhausted());
        let dpor_runs = members.iter().filter(|m| m.starts_with("dpor")).count();
        // The same DPOR executions, whatever ran between them.
        assert_eq!(dpor_runs, alone.len());
        assert!(members.iter().any(|m| m == "random"));
        assert!(members.iter().any(|m| m == "pct depth 2"));
        // DPOR first, then one randomized run per slice.
        assert!(
            members[..2].iter().all(|m| m.starts_with("dpor")),
            "{members:?}"
        );
        assert_eq!(mixed.sampled() as usize, members.len() - dpor_runs);
    }
}
