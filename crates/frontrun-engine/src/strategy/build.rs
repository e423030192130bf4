//! Building a strategy from what the user asked for (with the switch budget
//! of `max_ops`), and replay tokens.

use crate::event::ThreadId;
use crate::strategy::dpor::{BoundedDpor, Dpor, DporConfig, IterativeDpor, SearchOrder};
use crate::strategy::pct::Pct;
use crate::strategy::portfolio::{Mixed, Sampler};
use crate::strategy::random::RandomStrategy;
use crate::strategy::replay::Replay;
use crate::strategy::{Choice, Outcome, Strategy, ThreadStatus};
use crate::token;

/// What the user asked for.
#[derive(Clone, Debug)]
pub enum StrategyKind {
    Dpor {
        preemption_bound: Option<u32>,
        search_order: SearchOrder,
    },
    /// Iterative preemption bounding: bounds `0..=max_bound`, then plain DPOR.
    Iterative {
        max_bound: u32,
        pass_budget: u64,
        search_order: SearchOrder,
    },
    /// Iterative preemption bounding interleaved with randomized runs of
    /// `samplers` (the default search, and the portfolio).
    Mixed {
        max_bound: u32,
        pass_budget: u64,
        search_order: SearchOrder,
        seed: u64,
        samplers: Vec<Sampler>,
    },
    Random {
        seed: u64,
        attempts: u64,
        max_ops: Option<u64>,
    },
    Pct {
        seed: u64,
        depth: u32,
        attempts: u64,
    },
    Replay {
        schedule: Vec<ThreadId>,
    },
}

pub fn make(kind: &StrategyKind) -> Box<dyn Strategy + Send> {
    match kind {
        StrategyKind::Dpor {
            preemption_bound,
            search_order,
        } => match preemption_bound {
            // Sound for its bound (BPOR), unlike pruning optimal DPOR.
            Some(b) => Box::new(BoundedDpor::new(Some(*b), None)),
            None => Box::new(Dpor::new(
                DporConfig::default().with_search_order(*search_order),
            )),
        },
        StrategyKind::Iterative {
            max_bound,
            pass_budget,
            search_order,
        } => Box::new(IterativeDpor::new(*max_bound, *search_order).with_pass_budget(*pass_budget)),
        StrategyKind::Mixed {
            max_bound,
            pass_budget,
            search_order,
            seed,
            samplers,
        } => Box::new(Mixed::new(
            IterativeDpor::new(*max_bound, *search_order).with_pass_budget(*pass_budget),
            samplers,
            *seed,
        )),
        StrategyKind::Random {
            seed,
            attempts,
            max_ops,
        } => {
            let inner = RandomStrategy::new(*seed, *attempts);
            match max_ops {
                Some(m) => Box::new(SwitchBudget::new(inner, *m)),
                None => Box::new(inner),
            }
        }
        StrategyKind::Pct {
            seed,
            depth,
            attempts,
        } => Box::new(Pct::new(*seed, *depth, *attempts)),
        StrategyKind::Replay { schedule } => Box::new(Replay::new(schedule.clone())),
    }
}

/// A compact replay token for `schedule` (thread ids in run order).
/// The DPOR search order named by `frontrun.explore(search_order=...)`.
pub fn search_order(name: &str, seed: u64) -> Result<SearchOrder, String> {
    match name {
        "lowest-first" => Ok(SearchOrder::LowestFirst),
        "highest-first" => Ok(SearchOrder::HighestFirst),
        "random" => Ok(SearchOrder::Random(seed)),
        other => Err(format!(
            "unknown search_order {other:?}: use \"lowest-first\", \"highest-first\" or \"random\" (seeded by `seed`)"
        )),
    }
}

pub fn encode_token(schedule: &[ThreadId]) -> String {
    token::encode(schedule)
}

pub fn decode_token(text: &str) -> Result<Vec<ThreadId>, String> {
    token::decode(text).map_err(|e| {
        format!("{e} (a replay token is the `counterexample` of an exploration result)")
    })
}

/// Lets `inner` choose for the first `max_ops` scheduling points of an
/// execution; after that the running thread keeps running while it can.
pub struct SwitchBudget<S> {
    inner: S,
    max_ops: u64,
    schedule: Vec<ThreadId>,
}

impl<S: Strategy> SwitchBudget<S> {
    pub fn new(inner: S, max_ops: u64) -> Self {
        SwitchBudget {
            inner,
            max_ops,
            schedule: Vec::new(),
        }
    }
}

impl<S: Strategy> Strategy for SwitchBudget<S> {
    fn member(&self) -> String {
        self.inner.member()
    }

    fn begin_execution(&mut self) -> bool {
        self.schedule.clear();
        self.inner.begin_execution()
    }

    fn choose(&mut self, threads: &[ThreadStatus<'_>]) -> Choice {
        let last = self
            .schedule
            .last()
            .copied()
            .filter(|&l| matches!(threads.get(l), Some(ThreadStatus::Enabled(_))));
        let choice = match last {
            Some(l) if self.schedule.len() as u64 >= self.max_ops => Choice::Run(l),
            _ => self.inner.choose(threads),
        };
        if let Choice::Run(t) = choice {
            self.schedule.push(t);
        }
        choice
    }

    fn end_execution(&mut self, outcome: Outcome) {
        self.inner.end_execution(outcome);
    }

    fn schedule(&self) -> &[ThreadId] {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn token_round_trip_and_clear_errors() {
        let s = vec![0, 1, 1, 0, 12];
        assert_eq!(decode_token(&encode_token(&s)).unwrap(), s);
        let err = decode_token("nope").unwrap_err();
        assert!(err.contains("counterexample"), "{err}");
    }

    #[test]
    fn switch_budget_stops_switching_after_max_ops() {
        let e = Event::default();
        let both = [ThreadStatus::Enabled(&e), ThreadStatus::Enabled(&e)];
        let mut s = SwitchBudget::new(RandomStrategy::new(1, 1), 2);
        assert!(s.begin_execution());
        let first: Vec<Choice> = (0..2).map(|_| s.choose(&both)).collect();
        let Choice::Run(last) = first[1] else {
            panic!("two enabled threads")
        };
        for _ in 0..20 {
            assert_eq!(s.choose(&both), Choice::Run(last));
        }
        assert_eq!(s.schedule().len(), 22);
    }
}
