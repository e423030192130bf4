//! Progress of a long exploration on stderr: executions, executions per
//! second, the current bound and the elapsed time.
//!
//! Nothing is shown for the first [`QUIET_FOR`]: most explorations end
//! before that, and a line that flashes and vanishes is noise. After it, a
//! terminal gets one line rewritten in place (at most every [`TTY_EVERY`]);
//! anything else (a CI log, a captured stream) gets one line per
//! [`LOG_EVERY`], since rewritten lines pile up there as garbage.
//!
//! The text goes through Python's `sys.stderr`, not file descriptor 2, so
//! that pytest's capture and any redirection the user set up apply.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Quiet period before the first progress line.
pub const QUIET_FOR: Duration = Duration::from_secs(2);
/// Shortest interval between two rewrites of the terminal line.
pub const TTY_EVERY: Duration = Duration::from_millis(250);
/// Interval between two log lines when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// One self-updating line (stderr is a terminal).
    Terminal,
    /// One line per [`LOG_EVERY`].
    Log,
}

/// When to show progress, and what; the clock is passed in so the rules
/// can be tested without waiting.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    started: Instant,
    last_shown: Option<Instant>,
}

impl Progress {
    pub fn new(mode: Mode, started: Instant) -> Self {
        Progress {
            mode,
            started,
            last_shown: None,
        }
    }

    /// A line is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.started);
        if self.mode == Mode::Off || elapsed < QUIET_FOR {
            return false;
        }
        let every = match self.mode {
            Mode::Terminal => TTY_EVERY,
            _ => LOG_EVERY,
        };
        self.last_shown
            .is_none_or(|t| now.saturating_duration_since(t) >= every)
    }

    /// The text to write at `now` if a line is due (and note it as shown).
    pub fn tick(&mut self, now: Instant, executions: u64, searching: &str) -> Option<String> {
        if !self.due(now) {
            return None;
        }
        self.last_shown = Some(now);
        let line = line(
            executions,
            now.saturating_duration_since(self.started),
            searching,
        );
        Some(match self.mode {
            // Back to the line's start and clear it: a shorter line must not
            // leave the tail of the longer one before it.
            Mode::Terminal => format!("\r\x1b[K{line}"),
            _ => format!("{line}\n"),
        })
    }

    /// What to write when the exploration ends: a terminal line is completed
    /// with its final figures, so the shell prompt does not overwrite it.
    pub fn finish(&mut self, now: Instant, executions: u64, searching: &str) -> Option<String> {
        if self.mode != Mode::Terminal || self.last_shown.is_none() {
            return None;
        }
        let line = line(
            executions,
            now.saturating_duration_since(self.started),
            searching,
        );
        Some(format!("\r\x1b[K{line}\n"))
    }
}

/// `frontrun: 1234 executions, 410/s, dpor bound 1, 3.0 s`.
pub fn line(executions: u64, elapsed: Duration, searching: &str) -> String {
    let secs = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = if secs > 0.0 {
        executions as f64 / secs
    } else {
        0.0
    };
    format!("frontrun: {executions} executions, {rate:.0}/s, {searching}, {secs:.1} s elapsed")
}

/// The mode for `progress=` given where `sys.stderr` goes.
pub fn mode(py: Python<'_>, wanted: bool) -> Mode {
    if !wanted {
        return Mode::Off;
    }
    let tty = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|err| err.call_method0("isatty"))
        .and_then(|b| b.extract::<bool>())
        .unwrap_or(false);
    if tty {
        Mode::Terminal
    } else {
        Mode::Log
    }
}

/// Write `text` to `sys.stderr`; progress is a courtesy, so a closed or
/// missing stream is not an error of the exploration.
pub fn write(py: Python<'_>, text: &str) {
    if let Ok(err) = py.import("sys").and_then(|sys| sys.getattr("stderr")) {
        let _ = err.call_method1("write", (text,));
        let _ = err.call_method0("flush");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &Progress, secs: f64) -> Instant {
        p.started + Duration::from_secs_f64(secs)
    }

    #[test]
    fn quiet_for_two_seconds_then_every_quarter_second_on_a_terminal() {
        let mut p = Progress::new(Mode::Terminal, Instant::now());
        assert_eq!(p.tick(at(&p, 1.9), 10, "dpor bound 0"), None);
        let first = p.tick(at(&p, 2.0), 400, "dpor bound 1").unwrap();
        assert!(first.starts_with("\r\x1b[K"), "{first:?}");
        assert!(!first.ends_with('\n'));
        assert!(
            first.contains("400 executions, 200/s, dpor bound 1, 2.0 s"),
            "{first}"
        );
        assert_eq!(p.tick(at(&p, 2.1), 401, "x"), None);
        assert!(p.tick(at(&p, 2.3), 402, "x").is_some());
        let end = p.finish(at(&p, 3.0), 500, "dpor").unwrap();
        assert!(
            end.ends_with('\n') && end.contains("500 executions"),
            "{end}"
        );
    }

    #[test]
    fn one_line_per_ten_seconds_in_a_log() {
        let mut p = Progress::new(Mode::Log, Instant::now());
        assert_eq!(p.tick(at(&p, 1.0), 1, "x"), None);
        let first = p.tick(at(&p, 2.5), 5, "random").unwrap();
        assert!(first.ends_with('\n') && !first.contains('\r'), "{first:?}");
        assert_eq!(p.tick(at(&p, 12.0), 6, "x"), None);
        assert!(p.tick(at(&p, 12.5), 7, "x").is_some());
        // A log has no line to complete.
        assert_eq!(p.finish(at(&p, 13.0), 8, "x"), None);
    }

    #[test]
    fn off_shows_nothing_and_a_short_run_leaves_no_trace() {
        let mut off = Progress::new(Mode::Off, Instant::now());
        assert_eq!(off.tick(at(&off, 100.0), 1, "x"), None);
        let mut short = Progress::new(Mode::Terminal, Instant::now());
        assert_eq!(short.tick(at(&short, 0.5), 1, "x"), None);
        assert_eq!(short.finish(at(&short, 1.0), 1, "x"), None);
    }
}
