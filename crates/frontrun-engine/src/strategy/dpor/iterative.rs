//! Iterative preemption bounding (Musuvathi and Qadeer, PLDI 2007) without
//! repeats: one optimal DPOR search ([`Dpor`] with
//! [`super::DporConfig::bound_passes`]) whose branches are run in passes of
//! growing preemption bound, 0, 1, … up to `max_bound`, then the rest. A
//! branch over the current bound is deferred with its prefix, not dropped,
//! so every execution runs a trace no earlier one ran, and the search ends
//! exactly when plain DPOR's would, having covered the same traces. Most
//! bugs need few preemptions, so they come in the early passes.
//!
//! A pass is an order, not a proof for its bound: optimal DPOR runs one
//! schedule per trace, and the one it picks may cost more preemptions than
//! the cheapest schedule of that trace (a bounded proof is
//! [`super::BoundedDpor`]'s job: `preemption_bound=k`). Each pass runs at
//! most `pass_budget` executions before the next starts (what it left is
//! run later): with many threads, the orders needing no preemption alone
//! can be millions, and a one-preemption bug is then found early in pass 1.
//!
//! Executions whose trace an earlier execution already ran are still
//! counted ([`IterativeDpor::repeated`], by [`super::trace_fingerprint`]):
//! none, except where a reversal turns out infeasible (condition waits).

use std::collections::HashSet;

use super::{trace_fingerprint, Dpor, DporConfig, SearchOrder};
use crate::event::{Event, ThreadId};
use crate::strategy::{Choice, Divergence, Outcome, Strategy, ThreadStatus};

/// The bound of one pass of an iterative search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassBound {
    /// At most this many preemptions.
    Bounded(u32),
    /// The final, unbounded pass.
    Unbounded,
}

/// DPOR by iterative preemption bounding (see the module docs).
#[derive(Debug)]
pub struct IterativeDpor {
    max_bound: u32,
    search_order: SearchOrder,
    dpor: Dpor,
    seen: HashSet<u64>,
    repeated: u64,
    trace: Vec<(ThreadId, Event)>,
    /// Executions run by each pass so far, in order (the last one current).
    pass_executions: Vec<u64>,
    /// The pass of the current execution.
    current: PassBound,
}

impl IterativeDpor {
    /// Passes of bounds `0..=max_bound`, then the rest (free choices keep
    /// the last thread running, then follow `search_order`).
    pub fn new(max_bound: u32, search_order: SearchOrder) -> Self {
        Self::with_config(max_bound, u64::MAX, search_order)
    }

    fn with_config(max_bound: u32, pass_budget: u64, search_order: SearchOrder) -> Self {
        let config = DporConfig::default()
            .with_search_order(search_order)
            .with_bound_passes(max_bound, pass_budget);
        IterativeDpor {
            max_bound,
            search_order,
            dpor: Dpor::new(config),
            seen: HashSet::new(),
            repeated: 0,
            trace: Vec::new(),
            pass_executions: Vec::new(),
            current: PassBound::Bounded(0),
        }
    }

    /// Cap the executions of each bounded pass (before the first execution).
    pub fn with_pass_budget(self, budget: u64) -> Self {
        Self::with_config(self.max_bound, budget, self.search_order)
    }

    /// The pass of the current (or last) execution.
    pub fn bound(&self) -> PassBound {
        self.current
    }

    /// Executions that ran a trace already run.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    /// Executions of each pass that ran any, in order.
    pub fn pass_executions(&self) -> &[u64] {
        &self.pass_executions
    }

    /// Nothing is left to run.
    pub fn finished(&self) -> bool {
        self.dpor.finished()
    }

    /// The search is over and covered every Mazurkiewicz trace.
    pub fn exhausted(&self) -> bool {
        self.dpor.exhausted()
    }

    pub fn stats(&self) -> &super::DporStats {
        self.dpor.stats()
    }
}

impl Strategy for IterativeDpor {
    fn member(&self) -> String {
        match self.bound() {
            PassBound::Bounded(k) => format!("dpor bound {k}"),
            PassBound::Unbounded => "dpor unbounded".to_string(),
        }
    }

    fn begin_execution(&mut self) -> bool {
        if !self.dpor.begin_execution() {
            return false;
        }
        let pass = match self.dpor.pass_bound() {
            Some(k) => PassBound::Bounded(k),
            None => PassBound::Unbounded,
        };
        if pass != self.current || self.pass_executions.is_empty() {
            self.pass_executions.push(0);
        }
        self.current = pass;
        if let Some(n) = self.pass_executions.last_mut() {
            *n += 1;
        }
        self.trace.clear();
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let choice = self.dpor.choose(threads);
        if let Choice::Run(t) = choice {
            if let Some(ThreadStatus::Enabled(ev)) = threads.get(t) {
                self.trace.push((t, (*ev).clone()));
            }
        }
        choice
    }

    fn end_execution(&mut self, outcome: Outcome) {
        if !self.seen.insert(trace_fingerprint(&self.trace)) {
            self.repeated += 1;
        }
        self.dpor.end_execution(outcome);
    }

    fn divergence(&self) -> Option<&Divergence> {
        self.dpor.divergence()
    }

    fn schedule(&self) -> &[ThreadId] {
        self.dpor.schedule()
    }

    fn covered_every_trace(&self) -> Option<bool> {
        Some(self.exhausted())
    }

    fn pass_bound(&self) -> Option<PassBound> {
        Some(self.bound())
    }

    fn repeated_executions(&self) -> u64 {
        self.repeated
    }
}
