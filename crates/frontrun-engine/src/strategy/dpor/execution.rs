//! Per-execution bookkeeping shared by the DPOR explorers ([`super::Dpor`]
//! and [`super::BoundedDpor`]): the schedule run so far, which threads
//! became enabled again after being blocked (and after which step), and how
//! the execution ended.

use crate::event::{Event, ThreadId};
use crate::strategy::{Choice, ThreadStatus};

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
