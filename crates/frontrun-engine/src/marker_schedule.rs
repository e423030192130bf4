//! The turn-taking rules of a trace-marker schedule, free of threads and I/O.
//!
//! A schedule is an ordered list of steps `(thread, marker)`. Exactly one
//! thread holds the *turn* at a time; the others are parked. The rules:
//!
//! 1. Threads start one at a time in registration (`run()`) order, each
//!    running alone up to its first marked line, where it pauses.
//! 2. Once the schedule is sealed (every thread is known), the thread of the
//!    pending step gets the turn. A thread pauses before every marked line;
//!    when that line carries its pending step's marker the step is consumed
//!    there and the thread runs on alone to its next marked line, its end, or
//!    a blocking call. A thread whose marker is further on runs alone to it.
//! 3. After the last step, threads run to their ends one at a time in
//!    registration order, passing markers freely.
//! 4. A thread that blocks gives the turn away: to the thread of the first
//!    pending step whose thread is not blocked (after the schedule, to the
//!    first runnable thread). When its call returns it takes the turn back
//!    as soon as the running thread stops, before anyone else.
//!
//! The driver reports what each thread does and parks a thread while
//! [`MarkerSchedule::holds_turn`] is false.

use std::fmt;

/// Index of a thread, in the order the driver registered them.
pub type ThreadIdx = usize;

/// One step: thread `thread` executes its line tagged `marker` and runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MarkerStep {
    /// Name of the thread, as given when it was started.
    pub thread: String,
    /// Marker name, as written after `# frontrun:`.
    pub marker: String,
}

impl MarkerStep {
    /// A step for `thread` at `marker`.
    pub fn new(thread: impl Into<String>, marker: impl Into<String>) -> Self {
        MarkerStep {
            thread: thread.into(),
            marker: marker.into(),
        }
    }
}

impl fmt::Display for MarkerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Step({:?}, {:?})", self.thread, self.marker)
    }
}

/// What a thread must do after reporting where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerDecision {
    /// Keep running: it holds the turn.
    Run,
    /// Park until [`MarkerSchedule::holds_turn`] says otherwise.
    Pause,
}

/// Where a registered thread stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkerThreadState {
    /// Registered but not yet started.
    NotStarted,
    /// Started, parked before its first line until it gets the turn.
    AtStart,
    /// Holds the turn.
    Running,
    /// Paused just before a line tagged with these markers.
    Paused(Vec<String>),
    /// Inside a blocking call; gave the turn away.
    Blocked,
    /// Its blocking call returned; waits to take the turn back.
    Returned,
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
        step: MarkerStep,
        /// Its 1-based position in the schedule.
        position: usize,
        /// The names that were started.
        known: Vec<String>,
    },
    /// A thread returned while the turn was its, before reaching the marker.
    FinishedBeforeStep {
        /// The pending step.
        step: MarkerStep,
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

struct MarkerSlot {
    name: String,
    state: MarkerThreadState,
    /// Reached its first marked line (or finished, or blocked on the way):
    /// its start is over.
    start_done: bool,
}

/// The turn-taking state of one run of a schedule.
pub struct MarkerSchedule {
    steps: Vec<MarkerStep>,
    /// Which steps were consumed (a step may be consumed ahead of an earlier
    /// one whose thread is blocked).
    taken: Vec<bool>,
    /// Thread of each step, once registered.
    step_thread: Vec<Option<ThreadIdx>>,
    threads: Vec<MarkerSlot>,
    /// The thread allowed to run.
    turn: Option<ThreadIdx>,
    /// Every thread is registered: steps may be consumed.
    sealed: bool,
}

impl MarkerSchedule {
    /// A schedule over `steps`, with no thread registered yet.
    pub fn new(steps: Vec<MarkerStep>) -> Self {
        let n = steps.len();
        MarkerSchedule {
            steps,
            taken: vec![false; n],
            step_thread: vec![None; n],
            threads: Vec::new(),
            turn: None,
            sealed: false,
        }
    }

    /// Declare a thread before it starts.
    pub fn register(&mut self, name: &str) -> Result<ThreadIdx, ScheduleError> {
        if self.threads.iter().any(|s| s.name == name) {
            return Err(ScheduleError::DuplicateThread(name.to_owned()));
        }
        let idx = self.threads.len();
        for (slot, step) in self.step_thread.iter_mut().zip(&self.steps) {
            if step.thread == name {
                *slot = Some(idx);
            }
        }
        self.threads.push(MarkerSlot {
            name: name.to_owned(),
            state: MarkerThreadState::NotStarted,
            start_done: false,
        });
        Ok(idx)
    }

    /// No more threads will be registered: the steps may begin.
    pub fn seal(&mut self) {
        self.sealed = true;
        self.pick();
    }

    /// Whether [`Self::seal`] was called.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The steps.
    pub fn steps(&self) -> &[MarkerStep] {
        &self.steps
    }

    /// The first step not yet consumed and its 0-based index.
    pub fn pending(&self) -> Option<(usize, &MarkerStep)> {
        self.taken
            .iter()
            .position(|t| !t)
            .map(|i| (i, &self.steps[i]))
    }

    /// Every step has been consumed.
    pub fn is_exhausted(&self) -> bool {
        self.taken.iter().all(|t| *t)
    }

    /// Name of thread `t`.
    pub fn name(&self, t: ThreadIdx) -> &str {
        &self.threads[t].name
    }

    /// State of thread `t`.
    pub fn state(&self, t: ThreadIdx) -> &MarkerThreadState {
        &self.threads[t].state
    }

    /// Number of registered threads.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// The thread holding the turn.
    pub fn turn(&self) -> Option<ThreadIdx> {
        self.turn
    }

    /// Whether thread `t` may run now.
    pub fn holds_turn(&self, t: ThreadIdx) -> bool {
        self.turn == Some(t)
    }

    /// Thread `t` starts. It runs if the turn is its.
    pub fn on_start(&mut self, t: ThreadIdx) -> MarkerDecision {
        self.threads[t].state = MarkerThreadState::AtStart;
        self.pick();
        self.decision(t)
    }

    /// Thread `t` (holding the turn) is about to execute a line tagged with
    /// `markers`: consume its step there, keep going, or pause.
    pub fn on_marker<S: AsRef<str>>(&mut self, t: ThreadIdx, markers: &[S]) -> MarkerDecision {
        if !self.holds_turn(t) {
            return MarkerDecision::Run;
        }
        let keep_going = if !self.threads[t].start_done {
            // Rule 1: every thread first stops at its first marked line.
            self.threads[t].start_done = true;
            false
        } else {
            match self.effective_step() {
                None => self.is_exhausted(),
                Some(e) if self.step_thread[e] == Some(t) => {
                    if markers.iter().any(|m| m.as_ref() == self.steps[e].marker) {
                        self.taken[e] = true;
                    }
                    true
                }
                Some(_) => false,
            }
        };
        if keep_going {
            return MarkerDecision::Run;
        }
        self.threads[t].state =
            MarkerThreadState::Paused(markers.iter().map(|m| m.as_ref().to_owned()).collect());
        self.turn = None;
        self.pick();
        self.decision(t)
    }

    /// Thread `t` enters a call that would block: the turn passes on.
    pub fn on_block(&mut self, t: ThreadIdx) {
        if self.holds_turn(t) {
            self.threads[t].state = MarkerThreadState::Blocked;
            self.threads[t].start_done = true;
            self.turn = None;
            self.pick();
        }
    }

    /// Thread `t`'s blocking call returned: it takes the turn back as soon
    /// as the running thread stops.
    pub fn on_unblock(&mut self, t: ThreadIdx) -> MarkerDecision {
        if self.threads[t].state == MarkerThreadState::Blocked {
            self.threads[t].state = MarkerThreadState::Returned;
            self.pick();
        }
        self.decision(t)
    }

    /// The running thread just released the lock blocked thread `t` waits
    /// for: `t`'s call will return, so it counts as returned already and
    /// takes the turn back as soon as the running thread stops. Waiting for
    /// it to say so itself would let a later step's thread slip in first
    /// when the running thread pauses before `t` gets to report.
    pub fn on_wake(&mut self, t: ThreadIdx) {
        if self.threads[t].state == MarkerThreadState::Blocked {
            self.threads[t].state = MarkerThreadState::Returned;
            self.pick();
        }
    }

    /// A wake was wrong (another thread took the lock first): `t` is blocked
    /// again, and gives the turn back if it had been handed to it.
    pub fn on_unwake(&mut self, t: ThreadIdx) {
        match self.threads[t].state {
            MarkerThreadState::Returned => self.threads[t].state = MarkerThreadState::Blocked,
            MarkerThreadState::Running if self.turn == Some(t) => {
                self.threads[t].state = MarkerThreadState::Blocked;
                self.turn = None;
                self.pick();
            }
            _ => {}
        }
    }

    /// Thread `t` returned or raised. Steps of `t` left untaken can never be
    /// taken: the first of them is returned as the error.
    pub fn on_finish(&mut self, t: ThreadIdx) -> Result<(), ScheduleError> {
        self.threads[t].state = MarkerThreadState::Finished;
        self.threads[t].start_done = true;
        if self.holds_turn(t) {
            self.turn = None;
        }
        let missed =
            (0..self.steps.len()).find(|&i| !self.taken[i] && self.step_thread[i] == Some(t));
        self.pick();
        match missed {
            Some(i) => Err(ScheduleError::FinishedBeforeStep {
                step: self.steps[i].clone(),
                position: i + 1,
            }),
            None => Ok(()),
        }
    }

    fn decision(&self, t: ThreadIdx) -> MarkerDecision {
        if self.holds_turn(t) {
            MarkerDecision::Run
        } else {
            MarkerDecision::Pause
        }
    }

    fn is_blocked(&self, t: ThreadIdx) -> bool {
        matches!(
            self.threads[t].state,
            MarkerThreadState::Blocked | MarkerThreadState::Returned
        )
    }

    /// The step the schedule waits for: the first untaken one whose thread is
    /// not blocked (a blocked thread's step waits while later ones go on).
    fn effective_step(&self) -> Option<usize> {
        (0..self.steps.len())
            .find(|&i| !self.taken[i] && !self.step_thread[i].is_some_and(|t| self.is_blocked(t)))
    }

    /// Hand a free turn to the thread the rules name, if any can run now.
    fn pick(&mut self) {
        if self.turn.is_some() {
            return;
        }
        let chosen = self.choose();
        if let Some(t) = chosen {
            if let MarkerThreadState::Paused(markers) = &self.threads[t].state {
                if let Some(e) = self.effective_step() {
                    if self.step_thread[e] == Some(t) && markers.contains(&self.steps[e].marker) {
                        self.taken[e] = true;
                    }
                }
            }
            self.threads[t].state = MarkerThreadState::Running;
            self.turn = Some(t);
        }
    }

    fn choose(&self) -> Option<ThreadIdx> {
        let ready = |s: &MarkerSlot| {
            matches!(
                s.state,
                MarkerThreadState::AtStart | MarkerThreadState::Paused(_)
            )
        };
        // A thread whose blocking call returned had the turn: it goes first.
        if let Some(t) = self
            .threads
            .iter()
            .position(|s| s.state == MarkerThreadState::Returned)
        {
            return Some(t);
        }
        // Starts, one at a time in registration order.
        if let Some(t) = self.threads.iter().position(|s| !s.start_done) {
            return (self.threads[t].state == MarkerThreadState::AtStart).then_some(t);
        }
        if !self.sealed {
            return None;
        }
        if !self.is_exhausted() {
            let e = self.effective_step()?;
            let t = self.step_thread[e]?;
            return ready(&self.threads[t]).then_some(t);
        }
        self.threads.iter().position(ready)
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
            .all(|s| s.state == MarkerThreadState::Finished)
    }

    /// Nobody holds the turn and nobody can take it, yet some thread is
    /// blocked: unless a blocking call returns by itself, the run is stuck.
    pub fn is_stalled(&self) -> bool {
        self.sealed
            && self.turn.is_none()
            && self
                .threads
                .iter()
                .any(|s| s.state == MarkerThreadState::Blocked)
            && !self.threads.iter().any(|s| {
                matches!(
                    s.state,
                    MarkerThreadState::NotStarted | MarkerThreadState::Returned
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(steps: &[(&str, &str)], names: &[&str]) -> MarkerSchedule {
        let mut s =
            MarkerSchedule::new(steps.iter().map(|(t, m)| MarkerStep::new(*t, *m)).collect());
        for n in names {
            s.register(n).unwrap();
        }
        s
    }

    /// Drive thread `t` from its start to a marker the way the gate would.
    fn start_to(s: &mut MarkerSchedule, t: ThreadIdx, marker: &str) -> MarkerDecision {
        assert_eq!(
            s.on_start(t),
            MarkerDecision::Run,
            "{} starts alone",
            s.name(t)
        );
        s.on_marker(t, &[marker])
    }

    #[test]
    fn seed_schedule_is_serial_per_step() {
        // [a read, b read, a write, b write] with markers read -> write.
        let mut s = schedule(
            &[("a", "read"), ("b", "read"), ("a", "write"), ("b", "write")],
            &["a", "b"],
        );
        assert_eq!(start_to(&mut s, 0, "read"), MarkerDecision::Pause);
        // b is not started yet when a pauses: nobody holds the turn.
        assert_eq!(s.turn(), None);
        assert_eq!(start_to(&mut s, 1, "read"), MarkerDecision::Pause);
        assert_eq!(s.turn(), None, "steps wait for seal");
        s.seal();
        assert_eq!(s.turn(), Some(0));
        assert_eq!(s.pending().unwrap().0, 1, "step 1 consumed at resume");
        assert_eq!(s.on_marker(0, &["write"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(1));
        assert_eq!(s.on_marker(1, &["write"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(0));
        assert!(s.is_exhausted() || s.pending().unwrap().0 == 3);
        assert_eq!(s.on_finish(0), Ok(()));
        assert_eq!(s.turn(), Some(1));
        assert!(s.is_exhausted());
        assert_eq!(s.on_finish(1), Ok(()));
        assert!(s.all_finished());
    }

    #[test]
    fn a_thread_runs_alone_past_markers_to_its_own() {
        let mut s = schedule(&[("a", "z")], &["a", "b"]);
        start_to(&mut s, 0, "x");
        s.on_start(1);
        assert_eq!(s.on_marker(1, &["q"]), MarkerDecision::Pause);
        s.seal();
        assert_eq!(s.turn(), Some(0));
        assert_eq!(s.on_marker(0, &["y"]), MarkerDecision::Run);
        assert_eq!(s.on_marker(0, &["z"]), MarkerDecision::Run);
        assert!(s.is_exhausted());
        // After the schedule markers pass freely.
        assert_eq!(s.on_marker(0, &["x"]), MarkerDecision::Run);
        s.on_finish(0).unwrap();
        assert_eq!(s.turn(), Some(1));
    }

    #[test]
    fn blocking_passes_the_turn_and_takes_it_back() {
        let mut s = schedule(
            &[("a", "l1"), ("b", "l2"), ("a", "l2"), ("b", "l1")],
            &["a", "b"],
        );
        start_to(&mut s, 0, "l1");
        start_to(&mut s, 1, "l2");
        s.seal();
        assert_eq!(s.on_marker(0, &["l2"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(1));
        assert_eq!(s.on_marker(1, &["l1"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(0));
        s.on_block(0);
        assert_eq!(s.turn(), Some(1), "the next step's thread");
        assert!(s.is_exhausted());
        s.on_block(1);
        assert_eq!(s.turn(), None);
        assert!(s.is_stalled());
        assert_eq!(s.on_unblock(1), MarkerDecision::Run);
        assert_eq!(s.on_unblock(0), MarkerDecision::Pause);
        s.on_finish(1).unwrap();
        assert_eq!(s.turn(), Some(0));
    }

    #[test]
    fn a_woken_thread_goes_before_the_next_step_and_an_unwake_undoes_it() {
        let mut s = schedule(&[("w", "a"), ("h", "b"), ("o", "c")], &["h", "w", "o"]);
        assert_eq!(start_to(&mut s, 0, "b"), MarkerDecision::Pause);
        assert_eq!(start_to(&mut s, 1, "a"), MarkerDecision::Pause);
        assert_eq!(start_to(&mut s, 2, "c"), MarkerDecision::Pause);
        s.seal();
        assert!(s.holds_turn(1));
        s.on_block(1);
        assert!(s.holds_turn(0));
        // h releases w's lock, then pauses at a later marker before w
        // reports: w, not o (whose step is next), gets the turn.
        s.on_wake(1);
        assert_eq!(s.on_marker(0, &["z"]), MarkerDecision::Pause);
        assert!(s.holds_turn(1));
        // The wake was wrong: the turn moves on to the next step.
        s.on_unwake(1);
        assert!(s.holds_turn(2));
        assert_eq!(s.state(1), &MarkerThreadState::Blocked);
    }

    #[test]
    fn a_blocked_threads_step_waits_while_later_steps_go_on() {
        let mut s = schedule(&[("a", "x"), ("a", "y"), ("b", "z")], &["a", "b"]);
        start_to(&mut s, 0, "x");
        start_to(&mut s, 1, "z");
        s.seal();
        s.on_block(0);
        assert_eq!(s.turn(), Some(1));
        assert_eq!(s.pending().unwrap().0, 1);
        assert_eq!(s.on_finish(1), Ok(()));
        assert_eq!(s.on_unblock(0), MarkerDecision::Run);
        assert_eq!(s.on_marker(0, &["y"]), MarkerDecision::Run);
        assert!(s.is_exhausted());
    }

    #[test]
    fn empty_schedule_runs_threads_one_after_another() {
        let mut s = schedule(&[], &["a", "b"]);
        assert_eq!(s.on_start(0), MarkerDecision::Run);
        assert_eq!(s.on_start(1), MarkerDecision::Pause);
        s.seal();
        assert_eq!(
            s.on_marker(0, &["m"]),
            MarkerDecision::Pause,
            "first marker"
        );
        assert_eq!(s.turn(), Some(1));
        assert_eq!(s.on_marker(1, &["m"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(0));
        assert_eq!(s.on_marker(0, &["n"]), MarkerDecision::Run);
        assert_eq!(s.check_threads_known(), Ok(()));
    }

    #[test]
    fn finishing_with_a_step_left_is_an_error() {
        let mut s = schedule(&[("a", "select"), ("b", "select")], &["a", "b"]);
        s.on_start(0);
        let err = s.on_finish(0).unwrap_err();
        assert_eq!(
            err,
            ScheduleError::FinishedBeforeStep {
                step: MarkerStep::new("a", "select"),
                position: 1
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("\"a\"") && msg.contains("\"select\""), "{msg}");
    }

    #[test]
    fn unknown_thread_is_reported_with_the_known_ones() {
        let s = schedule(&[("a", "x"), ("b", "select")], &["a", "c"]);
        match s.check_threads_known() {
            Err(ScheduleError::UnknownThread {
                step,
                position,
                known,
            }) => {
                assert_eq!(step, MarkerStep::new("b", "select"));
                assert_eq!(position, 2);
                assert_eq!(known, vec!["a".to_owned(), "c".to_owned()]);
            }
            other => panic!("expected UnknownThread, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_thread_names_are_rejected() {
        let mut s = schedule(&[], &["a"]);
        assert_eq!(
            s.register("a"),
            Err(ScheduleError::DuplicateThread("a".to_owned()))
        );
    }

    #[test]
    fn starts_follow_registration_order() {
        let mut s = schedule(&[("b", "x")], &["a", "b"]);
        assert_eq!(
            s.on_start(1),
            MarkerDecision::Pause,
            "b waits for a's start"
        );
        assert_eq!(s.on_start(0), MarkerDecision::Run);
        assert_eq!(s.on_marker(0, &["x"]), MarkerDecision::Pause);
        assert_eq!(s.turn(), Some(1));
    }
}
