//! The contract between a driver and a scheduling strategy.
//!
//! One execution goes: `begin_execution` → repeated `choose` → `end_execution`.
//! At each scheduling point the driver passes the status of *every* thread it
//! knows (index = [`ThreadId`]); the returned thread's pending event is taken
//! as executed, and that thread runs until its next scheduling point.

use crate::event::{Event, ThreadId};

pub mod build;
pub mod dpor;
pub mod guided;
pub mod pct;
pub mod portfolio;
pub mod random;
pub mod replay;

/// Where a thread stands when the driver asks for a decision.
#[derive(Clone, Copy, Debug)]
pub enum ThreadStatus<'a> {
    /// Parked before `event`, able to run it now.
    Enabled(&'a Event),
    /// Parked before `event`, which cannot run yet (a lock held by another
    /// thread, a database row lock, an unset event…).
    Disabled(&'a Event),
    /// Returned from its function; never runs again in this execution.
    Finished,
}

/// The strategy's answer at a scheduling point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Run this thread's pending event.
    Run(ThreadId),
    /// Some thread has not finished and none is enabled.
    Deadlock,
    /// Every thread has finished.
    AllFinished,
    /// Only DPOR: every enabled thread is in the sleep set, so any
    /// continuation repeats an explored trace. The driver ends the execution
    /// (calling `end_execution(Outcome::Passed)`) without checking the
    /// invariant, since the run is not complete.
    SleepBlocked,
}

/// How an execution ended, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Invariant violated, exception raised, or deadlock.
    Failed,
    /// The run was cut short (timeout); its tail must not be trusted.
    Aborted,
}

/// The first point where an execution did not replay the path a systematic
/// search expected: the same schedule from the same starting state must
/// produce the same events, so a difference means state outlived an
/// execution (a cache, a class attribute, lazy initialisation…) or the
/// program is nondeterministic. Later branches then explore a different
/// program, so the search proves nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based number of the execution (counting every `begin_execution`).
    pub execution: u64,
    /// Scheduling point, 0-based.
    pub step: usize,
    pub thread: ThreadId,
    /// The event recorded there by an earlier execution.
    pub expected: Event,
    /// The thread's pending event now; `None` if it could not run.
    pub found: Option<Event>,
}

/// A scheduling strategy: DPOR, random, PCT, a mix of them, or replay.
pub trait Strategy {
    /// Prepare the next execution; `false` when nothing is left to run.
    fn begin_execution(&mut self) -> bool;
    /// Pick the thread whose pending event runs next.
    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice;
    /// Close the execution (DPOR does its race analysis here).
    fn end_execution(&mut self, outcome: Outcome);
    /// The choices made so far in the current execution, for replay tokens.
    fn schedule(&self) -> &[ThreadId];
    /// After `begin_execution` returned `false`: `Some(true)` if every
    /// Mazurkiewicz trace was covered, `Some(false)` if not; `None` when the
    /// strategy leaves that to the driver (which knows what it built).
    fn covered_every_trace(&self) -> Option<bool> {
        None
    }
    /// For a search in passes of growing preemption bounds: the bound of
    /// the current pass.
    fn pass_bound(&self) -> Option<dpor::PassBound> {
        None
    }
    /// Executions that repeated a Mazurkiewicz trace an earlier one ran.
    fn repeated_executions(&self) -> u64 {
        0
    }
    /// Preemptions and context switches of the last execution, for
    /// strategies that count them.
    fn switch_counts(&self) -> Option<guided::SwitchCounts> {
        None
    }
    /// Who chooses the current execution, for the result's `found_by` and
    /// the progress line: "dpor", "dpor bound 1", "random", "pct depth 2"…
    fn member(&self) -> String;
    /// For a systematic search: the first execution that did not replay the
    /// recorded prefix (see [`Divergence`]).
    fn divergence(&self) -> Option<&Divergence> {
        None
    }
}
