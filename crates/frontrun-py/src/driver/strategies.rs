//! Strategy construction and replay tokens for the driver.
//!
//! DPOR is the engine's. The engine crate also owns random, PCT and the token
//! format; until those land this module provides small stand-ins with the
//! same contract: a seeded random walk and a replayer.

use frontrun_engine::event::ThreadId;
use frontrun_engine::strategy::dpor::{Dpor, DporConfig};
use frontrun_engine::strategy::{Choice, Outcome, Strategy, ThreadStatus};

/// What the user asked for.
#[derive(Clone, Debug)]
pub enum Kind {
    Dpor { preemption_bound: Option<u32> },
    Random { seed: u64, max_ops: Option<u64> },
    Pct { seed: u64, depth: u32 },
    Replay { schedule: Vec<ThreadId> },
}

pub fn make(kind: &Kind) -> Box<dyn Strategy + Send> {
    match kind {
        Kind::Dpor { preemption_bound } => {
            let mut config = DporConfig::default();
            if let Some(b) = preemption_bound {
                config = config.with_preemption_bound(*b);
            }
            Box::new(Dpor::new(config))
        }
        Kind::Random { seed, max_ops } => Box::new(RandomWalk::new(*seed, *max_ops)),
        Kind::Pct { seed, .. } => Box::new(RandomWalk::new(*seed, None)),
        Kind::Replay { schedule } => Box::new(Replay::new(schedule.clone())),
    }
}

const TOKEN_PREFIX: &str = "fr1:";

/// A compact replay token for `schedule` (thread ids in run order).
pub fn encode_token(schedule: &[ThreadId]) -> String {
    let body: Vec<String> = schedule.iter().map(ToString::to_string).collect();
    format!("{TOKEN_PREFIX}{}", body.join("."))
}

pub fn decode_token(token: &str) -> Result<Vec<ThreadId>, String> {
    let body = token.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
        format!(
            "not a frontrun replay token: {token:?} (expected the `counterexample` of a result)"
        )
    })?;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split('.')
        .map(|p| {
            p.parse::<ThreadId>()
                .map_err(|_| format!("corrupt replay token {token:?}: bad step {p:?}"))
        })
        .collect()
}

fn enabled(threads: &[ThreadStatus<'_>]) -> Vec<ThreadId> {
    threads
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t, ThreadStatus::Enabled(_)))
        .map(|(i, _)| i)
        .collect()
}

fn none_enabled(threads: &[ThreadStatus<'_>]) -> Choice {
    if threads.iter().all(|t| matches!(t, ThreadStatus::Finished)) {
        Choice::AllFinished
    } else {
        Choice::Deadlock
    }
}

/// A uniformly random enabled thread at every point (xorshift, seeded).
/// After `max_ops` decisions the running thread keeps running while it can.
pub struct RandomWalk {
    state: u64,
    max_ops: Option<u64>,
    schedule: Vec<ThreadId>,
}

impl RandomWalk {
    pub fn new(seed: u64, max_ops: Option<u64>) -> Self {
        RandomWalk {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            max_ops,
            schedule: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

impl Strategy for RandomWalk {
    fn begin_execution(&mut self) -> bool {
        self.schedule.clear();
        true
    }
    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let opts = enabled(threads);
        if opts.is_empty() {
            return none_enabled(threads);
        }
        let last = self.schedule.last().copied().filter(|l| opts.contains(l));
        let past_budget = self
            .max_ops
            .is_some_and(|m| self.schedule.len() as u64 >= m);
        let pick = match last {
            Some(l) if past_budget => l,
            _ => opts[(self.next() % opts.len() as u64) as usize],
        };
        self.schedule.push(pick);
        Choice::Run(pick)
    }
    fn end_execution(&mut self, _outcome: Outcome) {}
    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }
}

/// Follows a recorded schedule; past its end, the lowest enabled thread.
pub struct Replay {
    steps: Vec<ThreadId>,
    pos: usize,
    schedule: Vec<ThreadId>,
}

impl Replay {
    pub fn new(steps: Vec<ThreadId>) -> Self {
        Replay {
            steps,
            pos: 0,
            schedule: Vec::new(),
        }
    }
}

impl Strategy for Replay {
    fn begin_execution(&mut self) -> bool {
        self.pos = 0;
        self.schedule.clear();
        true
    }
    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let opts = enabled(threads);
        if opts.is_empty() {
            return none_enabled(threads);
        }
        let want = self.steps.get(self.pos).copied();
        self.pos += 1;
        let pick = want.filter(|t| opts.contains(t)).unwrap_or(opts[0]);
        self.schedule.push(pick);
        Choice::Run(pick)
    }
    fn end_execution(&mut self, _outcome: Outcome) {}
    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let s = vec![0, 1, 1, 0, 12];
        assert_eq!(decode_token(&encode_token(&s)).unwrap(), s);
        assert!(decode_token("nope").is_err());
        assert!(decode_token("fr1:0.x").is_err());
    }
}
