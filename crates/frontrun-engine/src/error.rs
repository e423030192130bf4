//! The engine's error enum. The Python layer converts it to exceptions in
//! one place; every message says what was wrong and what to do about it.

use std::fmt;

use crate::event::ThreadId;

/// Everything the engine can report as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// A replay token could not be decoded.
    BadToken {
        token: String,
        problem: TokenProblem,
    },
    /// A replayed schedule asked for a thread that could not run.
    ReplayDivergence {
        step: usize,
        thread: ThreadId,
        reason: DivergenceReason,
    },
}

/// What is wrong with a replay token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProblem {
    /// No `v<N>:` prefix.
    MissingVersion,
    /// A version this engine cannot read.
    UnknownVersion(String),
    /// A character outside the token alphabet, at this position.
    BadCharacter { position: usize, found: char },
    /// The payload ends inside a number or before its checksum.
    Truncated,
    /// A number does not fit in 64 bits, or a thread id in `usize`.
    Overflow,
    /// The checksum does not match: the token was altered or cut.
    Checksum,
    /// A run of length zero, which the encoder never writes.
    EmptyRun,
    /// A `v1` token: older frontrun, weaker checksum.
    Obsolete,
    /// The schedule is longer than the replay accepts.
    TooLong { steps: u64, max: usize },
    /// The schedule names more threads than the replay accepts.
    TooManyThreads { threads: u64, max: usize },
    /// The runs do not add up to the length in the header, or name a thread
    /// beyond the header's count.
    Inconsistent,
}

/// Why a recorded thread could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivergenceReason {
    Finished,
    Disabled,
    /// The thread does not exist at that point.
    Unknown,
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenProblem::MissingVersion => {
                write!(f, "it does not start with a version such as 'v2:'")
            }
            TokenProblem::UnknownVersion(v) => {
                write!(f, "its version '{v}' is not supported by this frontrun")
            }
            TokenProblem::BadCharacter { position, found } => {
                write!(
                    f,
                    "character {found:?} at position {position} is not part of a token"
                )
            }
            TokenProblem::Truncated => write!(f, "it is cut short"),
            TokenProblem::Overflow => write!(f, "it holds a number too large for a schedule"),
            TokenProblem::Checksum => write!(f, "its checksum does not match (altered or cut)"),
            TokenProblem::EmptyRun => write!(f, "it holds an empty run"),
            TokenProblem::Obsolete => write!(
                f,
                "it is a 'v1' token from an older frontrun, which this version no longer reads \
                 (rerun the exploration to get a 'v2' token)"
            ),
            TokenProblem::TooLong { steps, max } => write!(
                f,
                "its schedule has {steps} steps, more than the {max} a replay accepts"
            ),
            TokenProblem::TooManyThreads { threads, max } => write!(
                f,
                "it names {threads} threads, more than the {max} a replay accepts"
            ),
            TokenProblem::Inconsistent => {
                write!(f, "its runs do not match its header (altered or forged)")
            }
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::BadToken { token, problem } => write!(
                f,
                "invalid replay token {token:?}: {problem}; pass the `counterexample` string of an exploration result unchanged"
            ),
            EngineError::ReplayDivergence { step, thread, reason } => {
                let why = match reason {
                    DivergenceReason::Finished => "had already finished",
                    DivergenceReason::Disabled => "was blocked",
                    DivergenceReason::Unknown => "did not exist",
                };
                write!(
                    f,
                    "replay diverged at step {step}: thread {thread} {why}; the program or its setup is not deterministic \
                     (or differs from the run that produced the token)"
                )
            }
        }
    }
}

impl std::error::Error for EngineError {}
