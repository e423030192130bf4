//! Iterative preemption bounding (Musuvathi and Qadeer, PLDI 2007), with
//! each pass sound for its bound: bounded DPOR ([`BoundedDpor`]) with bound
//! 0, 1, … up to `max_bound`, then optimal unbounded DPOR ([`Dpor`]).
//! Most bugs need few preemptions, so they are found in the early, small
//! passes; a bug-free program still ends in a proof.
//!
//! Cost control: bounded DPOR has no sleep sets, so its passes repeat
//! traces (on small racy counters a bound-2 pass runs 3–18 times as many
//! executions as optimal DPOR). So:
//! - a bounded pass that never dropped a backtrack point for its bound ran
//!   what the unbounded search would, so it already covered every
//!   Mazurkiewicz trace: the search stops there, exhausted;
//! - each bounded pass runs at most `pass_budget` executions, then the next
//!   pass starts (a pass cut short is no longer complete for its bound,
//!   which only delays bugs, never hides them: the unbounded pass covers
//!   everything). Per pass, not in total: with many threads, pass 0 alone
//!   can have millions of thread orders, and a one-preemption bug is then
//!   found early in pass 1.
//!
//! Executions whose trace an earlier execution already ran are counted
//! ([`IterativeDpor::repeated`], by [`super::trace_fingerprint`]); the
//! stateless driver cannot skip them before running them.

use std::collections::HashSet;

use super::bounded::BoundedDpor;
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

#[derive(Debug)]
enum Pass {
    Bounded(Box<BoundedDpor>),
    Unbounded(Box<Dpor>),
}

/// DPOR by iterative preemption bounding (see the module docs).
#[derive(Debug)]
pub struct IterativeDpor {
    max_bound: u32,
    pass_budget: u64,
    search_order: SearchOrder,
    pass: Pass,
    over: bool,
    covered_all: bool,
    seen: HashSet<u64>,
    repeated: u64,
    trace: Vec<(ThreadId, Event)>,
    /// Executions run by each finished pass, in order.
    pass_executions: Vec<u64>,
    /// The first divergence of any pass, numbered across passes.
    divergence: Option<Divergence>,
}

impl IterativeDpor {
    /// Bounded passes `0..=max_bound`, then the unbounded one (whose free
    /// choices follow `search_order`).
    pub fn new(max_bound: u32, search_order: SearchOrder) -> Self {
        IterativeDpor {
            max_bound,
            pass_budget: u64::MAX,
            search_order,
            pass: Pass::Bounded(Box::new(BoundedDpor::new(Some(0), None))),
            over: false,
            covered_all: false,
            seen: HashSet::new(),
            repeated: 0,
            trace: Vec::new(),
            pass_executions: Vec::new(),
            divergence: None,
        }
    }

    /// Cap the executions of each bounded pass.
    pub fn with_pass_budget(mut self, budget: u64) -> Self {
        self.pass_budget = budget;
        self
    }

    fn unbounded(&self) -> Pass {
        let config = DporConfig::default().with_search_order(self.search_order);
        Pass::Unbounded(Box::new(Dpor::new(config)))
    }

    pub fn bound(&self) -> PassBound {
        match &self.pass {
            Pass::Bounded(b) => PassBound::Bounded(b.bound().unwrap_or(0)),
            Pass::Unbounded(_) => PassBound::Unbounded,
        }
    }

    /// Executions that ran a trace already run.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    /// Executions of each finished pass.
    pub fn pass_executions(&self) -> &[u64] {
        &self.pass_executions
    }

    /// The search is over and covered every Mazurkiewicz trace.
    pub fn exhausted(&self) -> bool {
        self.over && self.covered_all
    }

    fn strategy(&mut self) -> &mut dyn Strategy {
        match &mut self.pass {
            Pass::Bounded(b) => b.as_mut(),
            Pass::Unbounded(d) => d.as_mut(),
        }
    }

    /// The current pass has nothing left: decide what comes next.
    fn next_pass(&mut self) -> bool {
        match &self.pass {
            Pass::Bounded(b) => {
                self.pass_executions.push(b.stats().executions);
                if b.complete() {
                    self.covered_all = true;
                    return false;
                }
                let k = b.bound().unwrap_or(0);
                self.pass = if k < self.max_bound {
                    Pass::Bounded(Box::new(BoundedDpor::new(Some(k + 1), None)))
                } else {
                    self.unbounded()
                };
                true
            }
            Pass::Unbounded(d) => {
                self.pass_executions.push(d.stats().executions);
                self.covered_all = d.exhausted();
                false
            }
        }
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
        if self.over {
            return false;
        }
        loop {
            let cut = match &self.pass {
                Pass::Bounded(b) => b.stats().executions >= self.pass_budget,
                Pass::Unbounded(_) => false,
            };
            if !cut && self.strategy().begin_execution() {
                self.trace.clear();
                return true;
            }
            if !self.next_pass() {
                self.over = true;
                return false;
            }
        }
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let choice = self.strategy().choose(threads);
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
        self.strategy().end_execution(outcome);
        if self.divergence.is_none() {
            let before: u64 = self.pass_executions.iter().sum();
            self.divergence = self.strategy().divergence().cloned().map(|mut d| {
                d.execution += before;
                d
            });
        }
    }

    fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    fn schedule(&self) -> &[ThreadId] {
        match &self.pass {
            Pass::Bounded(b) => b.schedule(),
            Pass::Unbounded(d) => d.schedule(),
        }
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
