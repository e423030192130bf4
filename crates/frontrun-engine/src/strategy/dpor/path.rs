//! The exploration stack: one [`Node`] per scheduling point of the current
//! execution, kept across executions for the replayed prefix.
//!
//! A node stores what ran there (`thread`, `event`), the sleep set (threads
//! whose pending event need not be tried from here, with that event), the
//! wakeup tree of branches still to explore from here, and the preemption
//! count used by the optional bound.

use super::step::Executed;
use super::wakeup::WakeupTree;
use crate::event::{Event, ThreadId};

/// One scheduling point of the current execution.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    /// Thread chosen here in the current execution.
    pub thread: ThreadId,
    /// Its event, as the driver last reported it.
    pub event: Event,
    /// Sleep set: inherited from the parent (filtered) plus branches already
    /// explored at this node.
    pub sleep: Vec<(ThreadId, Event)>,
    /// Branches still to explore at this node (the current one excluded).
    pub wut: WakeupTree,
    /// Whether the thread that ran at the previous point was enabled here, so
    /// that running another thread here is a preemption.
    pub prev_enabled: bool,
    /// Preemptions of the execution up to and including this step.
    pub preemptions: u32,
    /// Position of the event after which this (non-lock) event stopped being
    /// disabled: it cannot be reordered before it, so it is a
    /// happens-before edge and never a race to reverse.
    pub enabled_by: Option<usize>,
}

impl Node {
    /// The sleep set a child inherits: entries independent of this node's
    /// event (a conflicting step wakes the sleeper up).
    pub fn child_sleep(&self) -> Vec<(ThreadId, Event)> {
        self.sleep
            .iter()
            .filter(|(q, ev)| *q != self.thread && !ev.conflicts(&self.event))
            .cloned()
            .collect()
    }

    pub fn is_asleep(&self, t: ThreadId) -> bool {
        self.sleep.iter().any(|(q, _)| *q == t)
    }
}

impl Executed for Node {
    fn thread(&self) -> ThreadId {
        self.thread
    }
    fn event(&self) -> &Event {
        &self.event
    }
    fn enabled_by(&self) -> Option<usize> {
        self.enabled_by
    }
}
