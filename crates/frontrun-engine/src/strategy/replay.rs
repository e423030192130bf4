//! Replay: follow a recorded list of thread choices exactly.
//!
//! Public API: [`Replay::new`] (schedule, e.g. from [`crate::token::decode`]),
//! [`Replay::with_runs`] (how many executions `begin_execution` allows,
//! default 1), [`Replay::divergence`] (the first step of the last execution
//! where the recorded thread could not run, as an [`EngineError`]).
//!
//! After a divergence, or once the recording is used up, the lowest enabled
//! thread runs, so the execution still ends and the driver can report both
//! the error and what happened.

use crate::error::{DivergenceReason, EngineError};
use crate::event::ThreadId;
use crate::strategy::{Choice, Outcome, Strategy, ThreadStatus};

#[derive(Clone, Debug)]
pub struct Replay {
    recorded: Vec<ThreadId>,
    runs_left: u32,
    pos: usize,
    taken: Vec<ThreadId>,
    divergence: Option<EngineError>,
}

impl Replay {
    pub fn new(recorded: Vec<ThreadId>) -> Self {
        Replay {
            recorded,
            runs_left: 1,
            pos: 0,
            taken: Vec::new(),
            divergence: None,
        }
    }

    /// Allow `n` executions of the same schedule (to check it reproduces).
    pub fn with_runs(mut self, n: u32) -> Self {
        self.runs_left = n;
        self
    }

    /// Where the last execution stopped following the recording, if it did.
    pub fn divergence(&self) -> Option<&EngineError> {
        self.divergence.as_ref()
    }

    /// Whether the last execution used the whole recording and no more.
    pub fn followed_exactly(&self) -> bool {
        self.divergence.is_none()
            && self.pos == self.recorded.len()
            && self.taken.len() == self.recorded.len()
    }
}

impl Strategy for Replay {
    fn member(&self) -> String {
        "replay".to_string()
    }

    fn begin_execution(&mut self) -> bool {
        if self.runs_left == 0 {
            return false;
        }
        self.runs_left -= 1;
        self.pos = 0;
        self.taken.clear();
        self.divergence = None;
        true
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let first_enabled = threads
            .iter()
            .position(|s| matches!(s, ThreadStatus::Enabled(_)));
        let Some(fallback) = first_enabled else {
            return if threads.iter().all(|s| matches!(s, ThreadStatus::Finished)) {
                Choice::AllFinished
            } else {
                Choice::Deadlock
            };
        };
        let mut pick = fallback;
        if self.divergence.is_none() && self.pos < self.recorded.len() {
            let t = self.recorded[self.pos];
            let reason = match threads.get(t) {
                Some(ThreadStatus::Enabled(_)) => None,
                Some(ThreadStatus::Disabled(_)) => Some(DivergenceReason::Disabled),
                Some(ThreadStatus::Finished) => Some(DivergenceReason::Finished),
                None => Some(DivergenceReason::Unknown),
            };
            match reason {
                None => {
                    pick = t;
                    self.pos += 1;
                }
                Some(reason) => {
                    self.divergence = Some(EngineError::ReplayDivergence {
                        step: self.pos,
                        thread: t,
                        reason,
                    });
                }
            }
        }
        self.taken.push(pick);
        Choice::Run(pick)
    }

    fn end_execution(&mut self, _outcome: Outcome) {}

    fn schedule(&self) -> &[ThreadId] {
        &self.taken
    }
}
