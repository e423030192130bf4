//! The turn-taking rules of a trace-marker schedule, free of threads and I/O.
//!
//! A schedule is an ordered list of steps `(thread, marker)`. The thread of
//! the current step holds the *turn*: it runs until it is about to execute a
//! line tagged with the step's marker, pauses there, and the turn passes to the
//! next step's thread. Threads of the schedule that do not hold the turn are
//! parked (at their start, or where they last paused). Threads the schedule
//! never names are not governed at all. Once the steps are used up every thread
//! is released.
//!
//! The driver reports what each thread does and obeys the answers; it parks a
//! thread while [`MarkerSchedule::may_proceed`] is false.

use std::fmt;

/// Index of a thread, in the order the driver registered them.
pub type ThreadIdx = usize;

/// One step: let `thread` run until it is about to execute the line tagged
/// `marker`, then pause it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    /// Name of the thread, as given when it was started.
    pub thread: String,
    /// Marker name, as written after `# frontrun:`.
    pub marker: String,
}

impl Step {
    /// A step for `thread` up to `marker`.
    pub fn new(thread: impl Into<String>, marker: impl Into<String>) -> Self {
        Step {
            thread: thread.into(),
            marker: marker.into(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Step({:?}, {:?})", self.thread, self.marker)
    }
}

/// What a thread must do after reporting where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep running.
    Run,
    /// Park until [`MarkerSchedule::may_proceed`] says otherwise.
    Pause,
}

/// Where a registered thread stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Registered but not yet started.
    NotStarted,
    /// Started, parked before its first line until it gets the turn.
    AtStart,
    /// Running (it holds the turn, the schedule is over, or it is not in the
    /// schedule).
    Running,
    /// Paused just before the line tagged by this marker.
    Paused(String),
    /// Returned or raised.
    Finished,
}

/// A violation of the schedule that makes it impossible to complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// Two threads were registered under one name.
    DuplicateThread(String),
    /// A step names a thread that was never started.
    UnknownThread {
        /// The step naming it.
        step: Step,
        /// Its 1-based position in the schedule.
        position: usize,
        /// The names that were started.
        known: Vec<String>,
    },
    /// A thread returned while the turn was its, before reaching the marker.
    FinishedBeforeStep {
        /// The pending step.
        step: Step,
        /// Its 1-based position in the schedule.
        position: usize,
    },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::DuplicateThread(name) => write!(
                f,
                "a thread named {name:?} was already started; give each thread a unique name"
            ),
            ScheduleError::UnknownThread {
                step,
                position,
                known,
            } => write!(
                f,
                "step {position} {step} names thread {:?}, but no thread of that name was \
                 started (started: {}); call run({:?}, ...) or fix the schedule",
                step.thread,
                quoted_list(known),
                step.thread
            ),
            ScheduleError::FinishedBeforeStep { step, position } => write!(
                f,
                "thread {:?} finished without reaching marker {:?} (pending step {position} \
                 {step}); check that the marked line runs in that thread after its previous step",
                step.thread, step.marker
            ),
        }
    }
}

impl std::error::Error for ScheduleError {}

fn quoted_list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Slot {
    name: String,
    state: ThreadState,
    /// Whether some step names this thread.
    scheduled: bool,
}

/// The turn-taking state of one run of a schedule.
pub struct MarkerSchedule {
    steps: Vec<Step>,
    /// Index of the pending step; `steps.len()` once exhausted.
    pos: usize,
    /// Thread of each step, once registered.
    step_thread: Vec<Option<ThreadIdx>>,
    threads: Vec<Slot>,
}

impl MarkerSchedule {
    /// A schedule over `steps`, with no thread registered yet.
    pub fn new(steps: Vec<Step>) -> Self {
        let step_thread = vec![None; steps.len()];
        MarkerSchedule {
            steps,
            pos: 0,
            step_thread,
            threads: Vec::new(),
        }
    }

    /// Declare a thread before it starts.
    pub fn register(&mut self, name: &str) -> Result<ThreadIdx, ScheduleError> {
        if self.threads.iter().any(|s| s.name == name) {
            return Err(ScheduleError::DuplicateThread(name.to_owned()));
        }
        let idx = self.threads.len();
        let mut scheduled = false;
        for (slot, step) in self.step_thread.iter_mut().zip(&self.steps) {
            if step.thread == name {
                *slot = Some(idx);
                scheduled = true;
            }
        }
        self.threads.push(Slot {
            name: name.to_owned(),
            state: ThreadState::NotStarted,
            scheduled,
        });
        Ok(idx)
    }

    /// Whether any step names thread `t` (otherwise it is never governed).
    pub fn is_scheduled(&self, t: ThreadIdx) -> bool {
        self.threads[t].scheduled
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The pending step and its 0-based index, unless the schedule is over.
    pub fn pending(&self) -> Option<(usize, &Step)> {
        self.steps.get(self.pos).map(|s| (self.pos, s))
    }

    /// Every step has been taken: all threads run freely.
    pub fn is_exhausted(&self) -> bool {
        self.pos >= self.steps.len()
    }

    /// Name of thread `t`.
    pub fn name(&self, t: ThreadIdx) -> &str {
        &self.threads[t].name
    }

    /// State of thread `t`.
    pub fn state(&self, t: ThreadIdx) -> &ThreadState {
        &self.threads[t].state
    }

    /// Number of registered threads.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    fn holds_turn(&self, t: ThreadIdx) -> bool {
        self.step_thread.get(self.pos).copied().flatten() == Some(t)
    }

    /// A parked thread may run: it holds the turn, or the schedule is over.
    pub fn may_proceed(&self, t: ThreadIdx) -> bool {
        !self.threads[t].scheduled || self.is_exhausted() || self.holds_turn(t)
    }

    /// Thread `t` starts. It waits at its start unless it may proceed.
    pub fn on_start(&mut self, t: ThreadIdx) -> Decision {
        if self.may_proceed(t) {
            self.threads[t].state = ThreadState::Running;
            Decision::Run
        } else {
            self.threads[t].state = ThreadState::AtStart;
            Decision::Pause
        }
    }

    /// Whether reaching a line tagged with `markers` would complete the
    /// pending step of thread `t` (a cheap check before [`Self::on_marker`]).
    pub fn wants<S: AsRef<str>>(&self, t: ThreadIdx, markers: &[S]) -> bool {
        match self.pending() {
            Some((_, step)) if self.holds_turn(t) => {
                markers.iter().any(|m| m.as_ref() == step.marker)
            }
            _ => false,
        }
    }

    /// Thread `t` is about to execute a line tagged with `markers`. If that
    /// completes its pending step, the turn moves on and `t` pauses.
    pub fn on_marker<S: AsRef<str>>(&mut self, t: ThreadIdx, markers: &[S]) -> Decision {
        if !self.wants(t, markers) {
            return Decision::Run;
        }
        let marker = self.steps[self.pos].marker.clone();
        self.pos += 1;
        self.threads[t].state = ThreadState::Paused(marker);
        Decision::Pause
    }

    /// A parked thread was woken and found it may proceed.
    pub fn on_resume(&mut self, t: ThreadIdx) {
        self.threads[t].state = ThreadState::Running;
    }

    /// Thread `t` returned or raised. It is an error if the turn was its.
    pub fn on_finish(&mut self, t: ThreadIdx) -> Result<(), ScheduleError> {
        self.threads[t].state = ThreadState::Finished;
        if self.threads[t].scheduled && self.holds_turn(t) {
            return Err(ScheduleError::FinishedBeforeStep {
                step: self.steps[self.pos].clone(),
                position: self.pos + 1,
            });
        }
        Ok(())
    }

    /// Once every thread has been started: a step naming a thread that was
    /// never registered can never be taken.
    pub fn check_threads_known(&self) -> Result<(), ScheduleError> {
        for (i, (step, thread)) in self.steps.iter().zip(&self.step_thread).enumerate() {
            if thread.is_none() {
                return Err(ScheduleError::UnknownThread {
                    step: step.clone(),
                    position: i + 1,
                    known: self.threads.iter().map(|s| s.name.clone()).collect(),
                });
            }
        }
        Ok(())
    }

    /// Every registered thread has finished.
    pub fn all_finished(&self) -> bool {
        self.threads
            .iter()
            .all(|s| s.state == ThreadState::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_schedule() -> MarkerSchedule {
        MarkerSchedule::new(vec![
            Step::new("a", "select"),
            Step::new("b", "select"),
            Step::new("a", "update"),
            Step::new("b", "update"),
        ])
    }

    #[test]
    fn seed_lost_update_order() {
        let mut s = seed_schedule();
        let a = s.register("a").unwrap();
        let b = s.register("b").unwrap();
        assert_eq!(s.on_start(a), Decision::Run);
        assert_eq!(s.on_start(b), Decision::Pause);
        assert_eq!(s.state(b), &ThreadState::AtStart);
        // a passes an unrelated marker, then reaches its step.
        assert_eq!(s.on_marker(a, &["update"]), Decision::Run);
        assert_eq!(s.on_marker(a, &["select"]), Decision::Pause);
        assert!(!s.may_proceed(a));
        assert!(s.may_proceed(b));
        s.on_resume(b);
        assert_eq!(s.on_marker(b, &["select"]), Decision::Pause);
        assert!(s.may_proceed(a) && !s.may_proceed(b));
        s.on_resume(a);
        assert_eq!(s.on_marker(a, &["update"]), Decision::Pause);
        s.on_resume(b);
        assert_eq!(s.on_marker(b, &["update"]), Decision::Pause);
        assert!(s.is_exhausted());
        assert!(s.may_proceed(a) && s.may_proceed(b));
        s.on_resume(a);
        s.on_resume(b);
        assert_eq!(s.on_marker(a, &["select"]), Decision::Run);
        assert_eq!(s.on_finish(a), Ok(()));
        assert_eq!(s.on_finish(b), Ok(()));
        assert!(s.all_finished());
    }

    #[test]
    fn threads_outside_the_schedule_run_freely() {
        let mut s = seed_schedule();
        let a = s.register("a").unwrap();
        let free = s.register("free").unwrap();
        assert!(!s.is_scheduled(free));
        assert_eq!(s.on_start(free), Decision::Run);
        assert_eq!(s.on_marker(free, &["select"]), Decision::Run);
        assert_eq!(s.on_finish(free), Ok(()));
        assert_eq!(s.pending().unwrap().0, 0);
        assert_eq!(s.on_start(a), Decision::Run);
    }

    #[test]
    fn consecutive_steps_of_one_thread_keep_the_turn() {
        let mut s = MarkerSchedule::new(vec![Step::new("a", "x"), Step::new("a", "y")]);
        let a = s.register("a").unwrap();
        assert_eq!(s.on_start(a), Decision::Run);
        assert_eq!(s.on_marker(a, &["x"]), Decision::Pause);
        assert!(s.may_proceed(a));
    }

    #[test]
    fn empty_schedule_releases_everyone() {
        let mut s = MarkerSchedule::new(vec![]);
        let a = s.register("a").unwrap();
        assert!(s.is_exhausted());
        assert_eq!(s.on_start(a), Decision::Run);
        assert_eq!(s.check_threads_known(), Ok(()));
    }

    #[test]
    fn finishing_while_holding_the_turn_is_an_error() {
        let mut s = seed_schedule();
        let a = s.register("a").unwrap();
        let _b = s.register("b").unwrap();
        s.on_start(a);
        let err = s.on_finish(a).unwrap_err();
        assert_eq!(
            err,
            ScheduleError::FinishedBeforeStep {
                step: Step::new("a", "select"),
                position: 1
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("\"a\"") && msg.contains("\"select\""), "{msg}");
    }

    #[test]
    fn finishing_after_the_schedule_is_fine() {
        let mut s = MarkerSchedule::new(vec![Step::new("a", "x")]);
        let a = s.register("a").unwrap();
        s.on_start(a);
        s.on_marker(a, &["x"]);
        s.on_resume(a);
        assert_eq!(s.on_finish(a), Ok(()));
    }

    #[test]
    fn unknown_thread_is_reported_with_the_known_ones() {
        let mut s = seed_schedule();
        s.register("a").unwrap();
        s.register("c").unwrap();
        match s.check_threads_known() {
            Err(ScheduleError::UnknownThread {
                step,
                position,
                known,
            }) => {
                assert_eq!(step, Step::new("b", "select"));
                assert_eq!(position, 2);
                assert_eq!(known, vec!["a".to_owned(), "c".to_owned()]);
            }
            other => panic!("expected UnknownThread, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_thread_names_are_rejected() {
        let mut s = seed_schedule();
        s.register("a").unwrap();
        assert_eq!(
            s.register("a"),
            Err(ScheduleError::DuplicateThread("a".to_owned()))
        );
    }

    #[test]
    fn turn_waits_for_a_thread_started_late() {
        let mut s = seed_schedule();
        let b = s.register("b").unwrap();
        assert_eq!(s.on_start(b), Decision::Pause);
        let a = s.register("a").unwrap();
        assert!(!s.may_proceed(b));
        assert_eq!(s.on_start(a), Decision::Run);
    }

    #[test]
    fn wants_only_matches_the_turn_holder() {
        let mut s = seed_schedule();
        let a = s.register("a").unwrap();
        let b = s.register("b").unwrap();
        s.on_start(a);
        assert!(s.wants(a, &["select"]));
        assert!(!s.wants(b, &["select"]));
        assert!(!s.wants(a, &["update"]));
        assert_eq!(s.on_marker(b, &["select"]), Decision::Run);
    }
}
