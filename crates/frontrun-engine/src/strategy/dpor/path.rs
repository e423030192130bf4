//! The exploration stack: one [`Node`] per scheduling point of the current
//! execution, kept across executions for the replayed prefix.
//!
//! A node stores what ran there (`thread`, `event`), the sleep set (threads
//! whose pending event need not be tried from here, with that event), the
//! wakeup tree of branches still to explore from here, and the preemption
//! count used by the optional bound.
//!
//! The sleep set and wakeup tree sit behind a shared handle: a search by
//! passes of growing preemption bound keeps the prefix of a point whose
//! remaining branches are over the current bound, and resumes it later;
//! that prefix and the live stack must then see one and the same point
//! (a race found below either inserts its branch there, once).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

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
    /// Sleep set and pending branches (see [`PointState`]).
    pub pending: SharedPoint,
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

/// What a point keeps across executions besides the step run there.
#[derive(Debug, Default)]
pub(crate) struct PointState {
    /// Sleep set: inherited from the parent (filtered) plus branches already
    /// explored at this node.
    pub sleep: Vec<(ThreadId, Event)>,
    /// Branches still to explore at this node (the current one excluded).
    pub wut: WakeupTree,
    /// Search by passes only: how many `sleep` entries were inherited; the
    /// rest are the children started here, in the order of `started`.
    pub inherited: usize,
    /// Search by passes only: the children started here, in order, with the
    /// point each led to. A deferred part of one child can find races after
    /// later children started; a branch those cover is inserted into their
    /// subtree (as optimal DPOR would have, had they still been pending),
    /// so these points are kept while the search runs.
    pub started: Vec<Started>,
    /// Search by passes only: the point before this one and the step run
    /// there to reach it (the root owns every point through `started`).
    pub parent: Option<(Weak<Mutex<PointState>>, ThreadId, Event)>,
}

/// A child started at a point (see [`PointState::started`]).
#[derive(Debug)]
pub(crate) struct Started {
    pub thread: ThreadId,
    pub event: Event,
    /// The next point on that child's path; `None` until it is reached (or
    /// if the execution ended there).
    pub point: Option<SharedPoint>,
}

/// A point's [`PointState`], shared by every saved prefix through the point.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedPoint(Arc<Mutex<PointState>>);

impl SharedPoint {
    pub fn new(p: PointState) -> Self {
        SharedPoint(Arc::new(Mutex::new(p)))
    }

    pub fn get(&self) -> MutexGuard<'_, PointState> {
        // Only the search's own thread ever locks it; a poisoned lock means
        // a panic already unwound through the search, whose state is then
        // still consistent (every update is a single push or pop).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn downgrade(&self) -> Weak<Mutex<PointState>> {
        Arc::downgrade(&self.0)
    }

    /// The path from the root to this point, to replay: each node holds
    /// the step its point ran on the way (the last one's is left default).
    pub fn path(&self) -> Vec<Node> {
        let mut nodes = vec![Node {
            pending: self.clone(),
            ..Node::default()
        }];
        let mut at = self.clone();
        loop {
            let up = at.get().parent.clone();
            let Some((parent, thread, event)) = up else {
                break;
            };
            let Some(parent) = parent.upgrade() else {
                unreachable!("the root owns every point of a search by passes")
            };
            at = SharedPoint(parent);
            nodes.push(Node {
                thread,
                event,
                pending: at.clone(),
                ..Node::default()
            });
        }
        nodes.reverse();
        nodes
    }

    /// Identifies the point while any handle to it lives.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Node {
    /// The sleep set a child inherits: entries independent of this node's
    /// event (a conflicting step wakes the sleeper up).
    pub fn child_sleep(&self) -> Vec<(ThreadId, Event)> {
        self.pending
            .get()
            .sleep
            .iter()
            .filter(|(q, ev)| *q != self.thread && !ev.conflicts(&self.event))
            .cloned()
            .collect()
    }

    pub fn is_asleep(&self, t: ThreadId) -> bool {
        self.pending.get().sleep.iter().any(|(q, _)| *q == t)
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
