//! Vector clocks with no thread cap.
//!
//! Public API:
//! - [`VClock`]: a growable vector of per-thread counters; missing entries read
//!   as 0, so clocks of different lengths compare naturally.
//! - [`VClock::join`], [`VClock::le`], [`VClock::tick`], [`VClock::get`],
//!   [`VClock::set`]; [`happens_before`] for events identified by
//!   `(thread, local index)`.
//!
//! An event's clock counts, per thread, how many events of that thread happen
//! before it or are it; its own entry is its 1-based index in its thread.

use crate::event::ThreadId;

/// A vector clock; entries past the end are 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VClock(Vec<u32>);

impl VClock {
    /// The zero clock.
    pub fn new() -> Self {
        VClock(Vec::new())
    }

    /// Counter of thread `t` (0 when never set).
    pub fn get(&self, t: ThreadId) -> u32 {
        self.0.get(t).copied().unwrap_or(0)
    }

    /// Set the counter of `t`, growing the clock when needed.
    pub fn set(&mut self, t: ThreadId, v: u32) {
        if t >= self.0.len() {
            self.0.resize(t + 1, 0);
        }
        self.0[t] = v;
    }

    /// Advance the counter of `t` by one and return the new value.
    pub fn tick(&mut self, t: ThreadId) -> u32 {
        let v = self.get(t) + 1;
        self.set(t, v);
        v
    }

    /// Pointwise maximum, in place.
    pub fn join(&mut self, other: &VClock) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }

    /// Pointwise `≤`: everything `self` has seen, `other` has seen too.
    pub fn le(&self, other: &VClock) -> bool {
        self.0.iter().enumerate().all(|(t, &v)| v <= other.get(t))
    }

    /// Reset to zero, keeping the allocation.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether the event `(t, idx)` (idx 1-based within `t`) is covered by
    /// this clock, i.e. happens before (or is) the event owning this clock.
    pub fn covers(&self, t: ThreadId, idx: u32) -> bool {
        self.get(t) >= idx
    }

    /// The raw counters (trailing entries may be missing).
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }
}

/// Whether event `a` = `(thread, 1-based local index)` happens before the
/// event whose clock is `b_clock` (owned by another event than `a`).
pub fn happens_before(a: (ThreadId, u32), b_clock: &VClock) -> bool {
    b_clock.covers(a.0, a.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_joins() {
        let mut a = VClock::new();
        a.tick(0);
        a.tick(0);
        let mut b = VClock::new();
        b.set(7, 3);
        assert_eq!(a.get(0), 2);
        assert_eq!(a.get(7), 0);
        assert!(!a.le(&b) && !b.le(&a));
        let mut c = a.clone();
        c.join(&b);
        assert!(a.le(&c) && b.le(&c));
        assert_eq!(c.as_slice(), &[2, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn happens_before_by_index() {
        let mut c = VClock::new();
        c.set(1, 4);
        assert!(happens_before((1, 4), &c));
        assert!(happens_before((1, 1), &c));
        assert!(!happens_before((1, 5), &c));
        assert!(!happens_before((0, 1), &c));
    }

    #[test]
    fn le_is_reflexive_and_ignores_trailing_zeros() {
        let mut a = VClock::new();
        a.set(3, 0);
        let b = VClock::new();
        assert!(a.le(&b) && b.le(&a));
        assert!(a.le(&a));
    }
}
