//! What a thread does at a scheduling point, and when two such things conflict.

/// Index of a thread within one execution: 0, 1, 2… in the order threads were
/// handed to the exploration (threads spawned later get the next free index).
pub type ThreadId = usize;

/// Identity of a shared object that is *stable across executions*: the driver
/// assigns it deterministically (for example by the order objects are found
/// when walking the `setup()` state), never from a raw address.
pub type ObjId = u64;

/// Which part of an object an access touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The whole object: overlaps every key of it.
    Any,
    /// One attribute, item or row, hashed by the driver.
    Exact(u64),
}

impl Key {
    /// Two keys of the same object touch a common part.
    pub fn overlaps(self, other: Key) -> bool {
        match (self, other) {
            (Key::Exact(a), Key::Exact(b)) => a == b,
            _ => true,
        }
    }
}

/// The kind of one access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessKind {
    /// Reads commute with reads.
    Read,
    /// Writes conflict with every access of an overlapping key except `Release`.
    Write,
    /// Taking a lock: conflicts with other `Acquire`s of the same object and
    /// inherits the happens-before clock of its last `Release`.
    Acquire,
    /// Giving a lock back: publishes the thread's clock to the object; it is
    /// never itself in a race.
    Release,
    /// Starting thread `obj` (as a `ThreadId`): the child inherits the clock.
    Spawn,
    /// Waiting for thread `obj` to finish: inherits the child's final clock.
    Join,
}

/// One access of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    pub obj: ObjId,
    pub key: Key,
    pub kind: AccessKind,
}

impl Access {
    pub fn read(obj: ObjId, key: Key) -> Self {
        Access {
            obj,
            key,
            kind: AccessKind::Read,
        }
    }
    pub fn write(obj: ObjId, key: Key) -> Self {
        Access {
            obj,
            key,
            kind: AccessKind::Write,
        }
    }

    /// Whether two accesses by *different* threads must not be reordered.
    pub fn conflicts(&self, other: &Access) -> bool {
        use AccessKind::*;
        if self.obj != other.obj {
            return false;
        }
        match (self.kind, other.kind) {
            (Acquire, Acquire) => true,
            (Write, Write) | (Write, Read) | (Read, Write) => self.key.overlaps(other.key),
            _ => false,
        }
    }
}

/// What a thread is about to do at a scheduling point. An event with no
/// accesses is a pure yield point (for example thread start or `time.sleep`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Event {
    pub accesses: Vec<Access>,
    /// Opaque to the engine: the driver's handle to where the event happened
    /// (code object and offset, SQL statement…), used only for explanations.
    pub site: u64,
}

impl Event {
    pub fn new(accesses: Vec<Access>, site: u64) -> Self {
        Event { accesses, site }
    }

    /// Whether two events of different threads are dependent.
    pub fn conflicts(&self, other: &Event) -> bool {
        self.accesses
            .iter()
            .any(|a| other.accesses.iter().any(|b| a.conflicts(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commute_writes_do_not() {
        let r = Access::read(1, Key::Exact(7));
        let w = Access::write(1, Key::Exact(7));
        let other_key = Access::write(1, Key::Exact(8));
        let whole = Access::read(1, Key::Any);
        assert!(!r.conflicts(&r));
        assert!(r.conflicts(&w) && w.conflicts(&r) && w.conflicts(&w));
        assert!(!w.conflicts(&other_key));
        assert!(whole.conflicts(&w));
        assert!(!Access::write(2, Key::Exact(7)).conflicts(&w));
    }
}
