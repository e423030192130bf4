//! What the race and sequence analyses read of one executed step. A trait,
//! so that they need not know the exploration stack's node (which holds
//! wakeup trees built from their results).

use crate::event::{Event, ThreadId};

/// One step of an analysed trace.
pub(crate) trait Executed {
    /// The thread that ran it.
    fn thread(&self) -> ThreadId;
    /// What it did.
    fn event(&self) -> &Event;
    /// The position of the step after which this one stopped being
    /// disabled: a happens-before edge, never a race to reverse.
    fn enabled_by(&self) -> Option<usize>;
}
