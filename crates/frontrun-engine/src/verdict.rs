//! Honest verdicts (SPEC "Honest verdicts"): a pass is reported only when
//! the search finished what was asked; otherwise the result is inconclusive
//! and says what stopped it.
//!
//! Public API: [`SearchSummary`] (what the driver saw), [`decide`] →
//! [`Verdict`], with [`Verdict::property_holds`] (`Some(true)`,
//! `Some(false)`, `None`), [`Verdict::exhausted`], [`Verdict::explanation`].

use std::fmt;

/// What stopped a search early.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InconclusiveReason {
    /// `max_executions` was reached while DPOR still had branches.
    MaxExecutions { limit: u64 },
    /// `total_timeout` (seconds) expired first.
    TotalTimeout { seconds: f64 },
    /// At least one execution exceeded `timeout_per_run` and was cut short.
    RunTimeout { runs: u64, seconds: f64 },
    /// The program used a construct some of whose outcomes the search does
    /// not explore (named by `what`): a pass cannot be a proof.
    Unexplored { what: &'static str },
    /// Execution `execution` did not replay the path the search recorded:
    /// the program changed between executions, so the search covered some
    /// other program.
    Diverged { execution: u64 },
    /// The threads shared an object of an untraced package whose internal
    /// state is not explored (the driver names it).
    UntracedState,
}

/// The outcome of a whole exploration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// An execution failed; its counterexample replays it.
    Fails,
    /// No failure, and the search finished. `exhausted`: DPOR ran every
    /// Mazurkiewicz trace (no preemption bound), so the pass is a proof.
    Holds { exhausted: bool },
    /// No failure seen, but the search was cut short.
    Inconclusive(InconclusiveReason),
}

/// The facts a driver gathers during a search.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SearchSummary {
    pub executions: u64,
    /// Some execution failed (invariant, exception, deadlock).
    pub failed: bool,
    /// The strategy finished what was asked (DPOR: its tree; random/PCT:
    /// all attempts).
    pub finished: bool,
    /// DPOR with no preemption bound (only then can a pass be exhaustive).
    pub unbounded_dpor: bool,
    /// `Some(limit)` if `max_executions` stopped the strategy with work left.
    pub stopped_by_max_executions: Option<u64>,
    /// `Some(seconds)` if `total_timeout` stopped the search.
    pub total_timeout: Option<f64>,
    /// Number of executions cut short by `timeout_per_run`, and that timeout.
    pub run_timeouts: u64,
    pub timeout_per_run: f64,
    /// `Some(construct)` if an execution used a construct whose other
    /// outcomes are not explored.
    pub unexplored: Option<&'static str>,
    /// `Some(n)` if execution `n` did not replay its recorded prefix.
    pub diverged_in: Option<u64>,
    /// The threads shared an object of an untraced package whose sharing
    /// frontrun does not account for.
    pub untraced_state: bool,
}

/// Apply the rules: a failure wins; a run timeout, a total timeout or an
/// execution cap with work left makes a pass inconclusive; otherwise holds.
pub fn decide(s: &SearchSummary) -> Verdict {
    if s.failed {
        return Verdict::Fails;
    }
    if let Some(execution) = s.diverged_in {
        return Verdict::Inconclusive(InconclusiveReason::Diverged { execution });
    }
    if s.untraced_state {
        return Verdict::Inconclusive(InconclusiveReason::UntracedState);
    }
    if s.run_timeouts > 0 {
        return Verdict::Inconclusive(InconclusiveReason::RunTimeout {
            runs: s.run_timeouts,
            seconds: s.timeout_per_run,
        });
    }
    if let Some(seconds) = s.total_timeout {
        if !s.finished {
            return Verdict::Inconclusive(InconclusiveReason::TotalTimeout { seconds });
        }
    }
    if let Some(limit) = s.stopped_by_max_executions {
        if !s.finished {
            return Verdict::Inconclusive(InconclusiveReason::MaxExecutions { limit });
        }
    }
    if !s.finished {
        // Defensive: an unfinished search with no recorded reason is still
        // not a pass.
        return Verdict::Inconclusive(InconclusiveReason::MaxExecutions {
            limit: s.executions,
        });
    }
    if let Some(what) = s.unexplored {
        return Verdict::Inconclusive(InconclusiveReason::Unexplored { what });
    }
    Verdict::Holds {
        exhausted: s.unbounded_dpor,
    }
}

impl Verdict {
    /// `property_holds` of the Python result.
    pub fn property_holds(&self) -> Option<bool> {
        match self {
            Verdict::Fails => Some(false),
            Verdict::Holds { .. } => Some(true),
            Verdict::Inconclusive(_) => None,
        }
    }

    pub fn exhausted(&self) -> bool {
        matches!(self, Verdict::Holds { exhausted: true })
    }

    /// Human text for a verdict that is not a failure (failures are
    /// explained from their trace by the driver).
    pub fn explanation(&self, executions: u64) -> String {
        self.to_string().replace("{n}", &executions.to_string())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Fails => write!(f, "an execution failed"),
            Verdict::Holds { exhausted: true } => write!(
                f,
                "the property holds in all {{n}} executions, which cover every distinct interleaving: the search is exhaustive"
            ),
            Verdict::Holds { exhausted: false } => write!(
                f,
                "the property held in all {{n}} executions, which cover what was asked but not every interleaving"
            ),
            Verdict::Inconclusive(InconclusiveReason::MaxExecutions { limit }) => write!(
                f,
                "inconclusive: no failure in {{n}} executions, but max_executions={limit} stopped the search \
                 with interleavings left; raise max_executions or set a preemption_bound"
            ),
            Verdict::Inconclusive(InconclusiveReason::TotalTimeout { seconds }) => write!(
                f,
                "inconclusive: no failure in {{n}} executions, but total_timeout={seconds}s stopped the search \
                 with interleavings left; raise total_timeout or set a preemption_bound"
            ),
            Verdict::Inconclusive(InconclusiveReason::Diverged { execution }) => write!(
                f,
                "inconclusive: no failure in {{n}} executions, but execution {execution} did not replay \
                 the steps recorded before it, so the program changed between executions and the \
                 search covered some other program"
            ),
            Verdict::Inconclusive(InconclusiveReason::UntracedState) => write!(
                f,
                "inconclusive: no failure in {{n}} executions, but the threads share state inside a \
                 package whose code is not traced, so a race there would be missed"
            ),
            Verdict::Inconclusive(InconclusiveReason::RunTimeout { runs, seconds }) => write!(
                f,
                "inconclusive: {runs} execution(s) exceeded timeout_per_run={seconds}s and were cut short; \
                 a thread may be blocked outside frontrun's control, or raise timeout_per_run"
            ),
            Verdict::Inconclusive(InconclusiveReason::Unexplored { what }) => write!(
                f,
                "inconclusive: no failure in {{n}} executions, but the program used {what}, \
                 and the outcomes that depend on it are not all explored"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SearchSummary {
        SearchSummary {
            executions: 10,
            finished: true,
            unbounded_dpor: true,
            timeout_per_run: 5.0,
            ..Default::default()
        }
    }

    #[test]
    fn an_unexplored_construct_makes_a_pass_inconclusive() {
        let v = decide(&SearchSummary {
            unexplored: Some("Thread.join(timeout=)"),
            ..base()
        });
        assert_eq!(v.property_holds(), None);
        assert!(!v.exhausted());
        assert!(v.explanation(10).contains("Thread.join(timeout=)"));
        // A failure is still a failure.
        let failed = decide(&SearchSummary {
            unexplored: Some("x"),
            failed: true,
            ..base()
        });
        assert_eq!(failed, Verdict::Fails);
    }

    #[test]
    fn finished_unbounded_dpor_is_an_exhaustive_pass() {
        let v = decide(&base());
        assert_eq!(v.property_holds(), Some(true));
        assert!(v.exhausted());
        assert!(v.explanation(10).contains("all 10 executions"));
    }

    #[test]
    fn bounded_or_sampled_pass_is_not_exhaustive() {
        let v = decide(&SearchSummary {
            unbounded_dpor: false,
            ..base()
        });
        assert_eq!(v.property_holds(), Some(true));
        assert!(!v.exhausted());
    }

    #[test]
    fn a_divergence_is_never_a_pass() {
        let v = decide(&SearchSummary {
            diverged_in: Some(3),
            ..base()
        });
        assert_eq!(v.property_holds(), None);
        assert!(!v.exhausted());
        assert!(v.explanation(10).contains("execution 3 did not replay"));
        let failed = SearchSummary {
            failed: true,
            diverged_in: Some(3),
            ..base()
        };
        assert_eq!(decide(&failed), Verdict::Fails);
    }

    #[test]
    fn untraced_shared_state_is_never_a_pass() {
        let v = decide(&SearchSummary {
            untraced_state: true,
            ..base()
        });
        assert_eq!(v.property_holds(), None);
        assert!(!v.exhausted());
        assert!(v.explanation(10).contains("not traced"));
    }

    #[test]
    fn cut_short_is_never_a_pass() {
        let capped = SearchSummary {
            finished: false,
            stopped_by_max_executions: Some(10),
            ..base()
        };
        assert_eq!(
            decide(&capped),
            Verdict::Inconclusive(InconclusiveReason::MaxExecutions { limit: 10 })
        );
        assert!(decide(&capped)
            .explanation(10)
            .contains("max_executions=10"));
        let timed = SearchSummary {
            finished: false,
            total_timeout: Some(20.0),
            ..base()
        };
        assert_eq!(decide(&timed).property_holds(), None);
        assert!(decide(&timed).explanation(7).contains("total_timeout=20s"));
        let run = SearchSummary {
            run_timeouts: 2,
            ..base()
        };
        assert_eq!(decide(&run).property_holds(), None);
        assert!(!decide(&run).exhausted());
        let unexplained = SearchSummary {
            finished: false,
            ..base()
        };
        assert_eq!(decide(&unexplained).property_holds(), None);
    }

    #[test]
    fn a_failure_wins_over_everything() {
        let s = SearchSummary {
            failed: true,
            finished: false,
            run_timeouts: 3,
            total_timeout: Some(1.0),
            ..base()
        };
        assert_eq!(decide(&s).property_holds(), Some(false));
    }
}
