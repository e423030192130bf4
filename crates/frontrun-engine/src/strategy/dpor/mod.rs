//! Optimal dynamic partial-order reduction (Abdulla, Aronis, Jonsson,
//! Sagonas, "Optimal Dynamic Partial Order Reduction", POPL 2014; JACM 2017),
//! with source sets given by wakeup trees and sleep sets, in a stateless
//! re-execution model: every execution replays a recorded prefix, follows a
//! wakeup-tree branch, then makes free choices.
//!
//! Public API:
//! - [`Dpor`]: the [`crate::strategy::Strategy`]; `Dpor::new(DporConfig)`.
//!   [`Dpor::stats`], [`Dpor::finished`] (the whole tree was run),
//!   [`Dpor::exhausted`] (finished with no preemption bound: every
//!   Mazurkiewicz trace was run), [`Dpor::stopped_by_limit`]
//!   (`max_executions` reached while work remained).
//! - [`DporConfig`] (`#[non_exhaustive]`, `Default` + `with_*` builders),
//!   [`SearchOrder`], [`DporStats`].
//! - [`BoundedDpor`]: preemption-bounded DPOR that is sound for its bound
//!   (BPOR); [`IterativeDpor`]: bounds 0, 1, … then unbounded.
//! - [`trace_fingerprint`]: identifies an execution's Mazurkiewicz trace.
//!
//! Events are matched across executions by thread id and [`crate::event::Event`]
//! equality; the driver keeps object ids stable across executions.
//!
//! Driver protocol (see [`crate::strategy`]): `begin_execution` → `choose` at
//! every point with *every* thread's status → `end_execution`. `choose`
//! returns `Run(t)`, `AllFinished`, `Deadlock` (some thread unfinished, none
//! enabled) or `SleepBlocked` (the only enabled threads are in the sleep set:
//! end the run without judging it; it never happens with locks, reads and
//! writes, and is counted in [`DporStats::sleep_blocked`]).
//!
//! Blocking:
//! - Lock acquisitions (`Acquire`) that cannot run are reported `Disabled`;
//!   two acquisitions of a lock race, with the release→acquire edge added
//!   only after race detection. When a run deadlocks, the pending events of
//!   the blocked threads are analysed as if appended, so the acquisition
//!   orders that avoid the deadlock are explored.
//! - Other blocking (condition waits, events, database row locks reported as
//!   `Disabled`): the event after which a thread became enabled again is a
//!   happens-before edge to its next step. A reversal can still turn out
//!   infeasible (the thread is disabled when its turn comes); then the rest
//!   of that wakeup sequence is dropped (counted in `divergences`) and the run
//!   continues with free choices. Every trace is still covered (checked
//!   against brute force), at the cost of some extra executions.
//! - A `Run` after a divergence in the replayed prefix (nondeterministic
//!   program) is handled the same way: never a hang or a panic.
//!
//! Determinism: the same program gives the same executions in the same
//! order (no hashing, no wall clock; `Random(seed)` is seeded).

mod bounded;
mod execution;
mod explorer;
mod index;
mod iterative;
mod path;
mod race;
mod sequence;
mod step;
mod wakeup;

pub use bounded::BoundedDpor;

pub use explorer::Dpor;
pub use iterative::{IterativeDpor, PassBound};

use crate::event::{Event, ThreadId};

/// A fingerprint of the Mazurkiewicz trace of an executed schedule: equal
/// for two schedules that only reorder independent steps, different (up to
/// hash collisions) otherwise. It hashes each thread's events in order with
/// their vector clocks (the happens-before relation built from program
/// order, conflicts, lock hand-overs, spawns and joins), which every
/// linearization of a trace shares.
pub fn trace_fingerprint(trace: &[(ThreadId, Event)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let nodes: Vec<path::Node> = trace
        .iter()
        .map(|(t, e)| path::Node {
            thread: *t,
            event: e.clone(),
            ..path::Node::default()
        })
        .collect();
    let mut clocks = race::TraceClocks::default();
    clocks.analyze(&nodes, nodes.len(), usize::MAX, &mut Vec::new());
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    // Stable: each thread's events stay in program order.
    order.sort_by_key(|&j| nodes[j].thread);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for j in order {
        nodes[j].thread.hash(&mut h);
        nodes[j].event.hash(&mut h);
        clocks.row(j).hash(&mut h);
    }
    h.finish()
}

/// How free choices (points not dictated by a wakeup tree) are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SearchOrder {
    /// The enabled, non-sleeping thread with the lowest id.
    #[default]
    LowestFirst,
    /// The one with the highest id.
    HighestFirst,
    /// A seeded pseudo-random pick (deterministic for a seed).
    Random(u64),
}

/// Options of a DPOR exploration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DporConfig {
    /// Stop after this many executions (`begin_execution` returns `false`).
    pub max_executions: Option<u64>,
    /// Only add branches whose schedule has at most this many preemptions
    /// (switching away from a thread that could still run). Branches are
    /// only ever dropped, never added, so the bounded search runs no more
    /// executions than the unbounded one (checked on random programs); a
    /// switch inside a reversed sequence is counted as a preemption whenever
    /// the thread left still had work (conservative). Free choices follow
    /// `search_order` as without a bound, so a run's tail may itself preempt.
    /// Pruning optimal DPOR this way is NOT sound for the bound (sleep sets
    /// and the bound together lose traces): use [`BoundedDpor`] for a search
    /// that covers every trace within a bound.
    pub preemption_bound: Option<u32>,
    pub search_order: SearchOrder,
    /// Run the same search in passes of growing preemption bound (see
    /// [`BoundPasses`]). Ignored with `preemption_bound`.
    pub bound_passes: Option<BoundPasses>,
}

/// Iterative preemption bounding without repeats (Musuvathi and Qadeer,
/// PLDI 2007, for the order; the search itself is optimal DPOR): a branch
/// whose schedule costs more preemptions than the current pass allows is
/// deferred, kept with its prefix, instead of run; pass `k + 1` resumes
/// what pass `k` deferred. Every execution runs once, the search ends when
/// plain DPOR's would, with the same traces covered; only the order
/// changes, so shallow bugs come first. Free choices continue the last
/// thread while it can run. A pass is an order, not a bound to prove: a
/// trace may be reached within a pass only through a schedule that costs
/// more (optimal DPOR picks one schedule per trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundPasses {
    /// After the pass of this bound, nothing more is deferred.
    pub max_bound: u32,
    /// Executions after which a pass gives way to the next, even with
    /// branches left within its bound (they are still run, later): with many
    /// threads, the orders needing no preemption alone can be millions.
    pub pass_budget: u64,
}

impl DporConfig {
    pub fn with_max_executions(mut self, n: u64) -> Self {
        self.max_executions = Some(n);
        self
    }
    pub fn with_preemption_bound(mut self, bound: u32) -> Self {
        self.preemption_bound = Some(bound);
        self
    }
    pub fn with_search_order(mut self, order: SearchOrder) -> Self {
        self.search_order = order;
        self
    }
    pub fn with_bound_passes(mut self, max_bound: u32, pass_budget: u64) -> Self {
        self.bound_passes = Some(BoundPasses {
            max_bound,
            pass_budget,
        });
        self
    }
}

impl DporStats {
    /// Count how an execution ended (`AllFinished` or `Deadlock`).
    fn count_end(&mut self, end: crate::strategy::Choice) {
        match end {
            crate::strategy::Choice::AllFinished => self.completed += 1,
            _ => self.deadlocks += 1,
        }
    }
}

/// Counters of one exploration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DporStats {
    /// Executions begun.
    pub executions: u64,
    /// Executions where every thread finished.
    pub completed: u64,
    /// Executions that ended in a deadlock.
    pub deadlocks: u64,
    /// Points whose branches were deferred to a later pass (searches by
    /// passes only; a point is counted each time the search leaves it).
    pub deferred: u64,
    /// Executions ended because every enabled thread was asleep (should stay
    /// 0 for locks, reads and writes).
    pub sleep_blocked: u64,
    /// Races found (each may or may not add a branch).
    pub races: u64,
    /// Branches added to wakeup trees.
    pub branches: u64,
    /// Branches dropped because they exceeded the preemption bound.
    pub pruned_by_bound: u64,
    /// Times a recorded or wakeup-tree thread could not run when expected
    /// (nondeterministic program or infeasible reversal).
    pub divergences: u64,
    /// Longest execution, in scheduling points.
    pub max_depth: u64,
}
