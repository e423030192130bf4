//! Per-execution bookkeeping shared by the DPOR explorers ([`super::Dpor`]
//! and [`super::BoundedDpor`]): the schedule run so far, which threads
//! became enabled again after being blocked (and after which step), and how
//! the execution ended.

use crate::event::{Event, ThreadId};
use crate::strategy::{Choice, Divergence, ThreadStatus};

/// What one execution has shown so far; reset by `begin`.
#[derive(Debug, Default)]
pub(super) struct Execution {
    /// The choices made so far, for replay tokens.
    pub schedule: Vec<ThreadId>,
    /// Which threads had finished when the execution ended (unknown = false).
    pub finished: Vec<bool>,
    /// Pending events of the threads left blocked by a deadlock: they never
    /// run, so they are analysed as if appended to the trace.
    pub blocked: Vec<(ThreadId, Event)>,
    /// Per thread: disabled at the last point seen, and the position of the
    /// event after which it became enabled again (see `Node::enabled_by`).
    was_disabled: Vec<bool>,
    enabler: Vec<Option<usize>>,
    /// The first replayed step of the search that did not repeat its
    /// recording (kept across executions).
    pub divergence: Option<Divergence>,
}

impl Execution {
    /// Forget the previous execution.
    pub fn begin(&mut self) {
        self.schedule.clear();
        self.finished.clear();
        self.blocked.clear();
        self.was_disabled.clear();
        self.enabler.clear();
    }

    /// At replayed point `step` of `execution`, where `thread` ran
    /// `recorded`: whether that thread can run now. Before `new_from` (the
    /// branch point) the execution repeats a recorded one step for step, so
    /// any difference is state that outlived an execution, not something
    /// DPOR chose: the first one of the search is kept.
    pub fn replays(
        &mut self,
        threads: &[ThreadStatus<'_>],
        (execution, step, new_from): (u64, usize, usize),
        thread: ThreadId,
        recorded: &Event,
    ) -> bool {
        let now = match threads.get(thread) {
            Some(ThreadStatus::Enabled(ev)) => Some(*ev),
            _ => None,
        };
        if step < new_from && now != Some(recorded) && self.divergence.is_none() {
            self.divergence = Some(Divergence {
                execution,
                step,
                thread,
                expected: recorded.clone(),
                found: now.cloned(),
            });
        }
        now.is_some()
    }

    /// Note which threads are blocked at the point after `depth` steps, and
    /// for those enabled again, the step that enabled them (`depth - 1`).
    pub fn track_enabling(&mut self, threads: &[ThreadStatus<'_>], depth: usize) {
        if self.was_disabled.len() < threads.len() {
            self.was_disabled.resize(threads.len(), false);
            self.enabler.resize(threads.len(), None);
        }
        for (t, s) in threads.iter().enumerate() {
            match s {
                ThreadStatus::Disabled(_) => {
                    self.was_disabled[t] = true;
                    self.enabler[t] = None;
                }
                ThreadStatus::Enabled(_) if self.was_disabled[t] => {
                    self.was_disabled[t] = false;
                    self.enabler[t] = depth.checked_sub(1);
                }
                _ => {}
            }
        }
    }

    /// The step that enabled `t` again, once: its next step is the one it
    /// applies to.
    pub fn take_enabler(&mut self, t: ThreadId) -> Option<usize> {
        self.enabler.get_mut(t).and_then(Option::take)
    }

    /// `None` while some thread is enabled; otherwise the execution is over:
    /// record which threads finished and the blocked threads' pending events,
    /// and say how it ended (`AllFinished` or `Deadlock`).
    pub fn terminal(&mut self, threads: &[ThreadStatus<'_>]) -> Option<Choice> {
        if threads
            .iter()
            .any(|s| matches!(s, ThreadStatus::Enabled(_)))
        {
            return None;
        }
        self.finished.clear();
        self.finished
            .extend(threads.iter().map(|s| matches!(s, ThreadStatus::Finished)));
        if self.finished.iter().all(|&f| f) {
            return Some(Choice::AllFinished);
        }
        self.blocked.clear();
        for (t, s) in threads.iter().enumerate() {
            if let ThreadStatus::Disabled(ev) = s {
                self.blocked.push((t, (*ev).clone()));
            }
        }
        Some(Choice::Deadlock)
    }

    /// At the end of an execution cut short without a terminal `choose`:
    /// only threads seen to finish are known finished; assume none of the
    /// `threads` threads did.
    pub fn assume_unfinished(&mut self, threads: usize) {
        if self.finished.is_empty() {
            self.finished.resize(threads, false);
        }
    }
}
