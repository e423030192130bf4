//! Wait-for graphs: who holds which resource, who waits for which, and the
//! cycle that makes a deadlock.
//!
//! Public API: [`WaitForGraph`] (`hold`, `release`, `wait`, `stop_waiting`,
//! `find_cycle`), [`CycleEdge`]. Resources are [`ObjId`]s (locks, rows…);
//! a resource may have several holders (shared locks).

use std::collections::BTreeMap;

use crate::event::{ObjId, ThreadId};

/// One step of a deadlock cycle: `thread` waits for `resource`, which the
/// thread of the next edge (cyclically) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleEdge {
    pub thread: ThreadId,
    pub resource: ObjId,
}

/// Holders and waiters at one moment. Deterministic: iteration is by id.
#[derive(Clone, Debug, Default)]
pub struct WaitForGraph {
    holders: BTreeMap<ObjId, Vec<ThreadId>>,
    waiting: BTreeMap<ThreadId, ObjId>,
}

impl WaitForGraph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hold(&mut self, thread: ThreadId, resource: ObjId) {
        let h = self.holders.entry(resource).or_default();
        if !h.contains(&thread) {
            h.push(thread);
        }
    }

    pub fn release(&mut self, thread: ThreadId, resource: ObjId) {
        if let Some(h) = self.holders.get_mut(&resource) {
            h.retain(|&t| t != thread);
            if h.is_empty() {
                self.holders.remove(&resource);
            }
        }
    }

    /// `thread` now waits for `resource` (a thread waits for one thing).
    pub fn wait(&mut self, thread: ThreadId, resource: ObjId) {
        self.waiting.insert(thread, resource);
    }

    pub fn stop_waiting(&mut self, thread: ThreadId) {
        self.waiting.remove(&thread);
    }

    /// A cycle of threads each waiting for a resource held by the next, or
    /// `None`. Starts from the lowest waiting thread that is on a cycle, so
    /// the answer is the same for the same graph.
    pub fn find_cycle(&self) -> Option<Vec<CycleEdge>> {
        // Depth-first search with colours; the path is kept to read the cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark: BTreeMap<ThreadId, Mark> =
            self.waiting.keys().map(|&t| (t, Mark::New)).collect();
        for &start in self.waiting.keys() {
            if mark[&start] != Mark::New {
                continue;
            }
            let mut path: Vec<CycleEdge> = Vec::new();
            // Stack of (thread, index of the next holder to try).
            let mut stack: Vec<(ThreadId, usize)> = vec![(start, 0)];
            mark.insert(start, Mark::OnPath);
            while let Some(&mut (t, ref mut next)) = stack.last_mut() {
                let r = self.waiting[&t];
                let holders = self.holders.get(&r).map_or(&[][..], Vec::as_slice);
                if *next == 0 {
                    path.push(CycleEdge {
                        thread: t,
                        resource: r,
                    });
                }
                if let Some(&u) = holders.get(*next) {
                    *next += 1;
                    match mark.get(&u) {
                        Some(Mark::OnPath) => {
                            let from = path.iter().position(|e| e.thread == u).expect("on path");
                            return Some(path[from..].to_vec());
                        }
                        Some(Mark::New) => {
                            mark.insert(u, Mark::OnPath);
                            stack.push((u, 0));
                        }
                        // Not waiting, or already known to reach no cycle.
                        _ => {}
                    }
                } else {
                    mark.insert(t, Mark::Done);
                    stack.pop();
                    path.pop();
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thread_lock_order_cycle() {
        let mut g = WaitForGraph::new();
        g.hold(0, 10);
        g.hold(1, 11);
        g.wait(0, 11);
        assert_eq!(g.find_cycle(), None);
        g.wait(1, 10);
        let c = g.find_cycle().unwrap();
        assert_eq!(
            c,
            vec![
                CycleEdge {
                    thread: 0,
                    resource: 11
                },
                CycleEdge {
                    thread: 1,
                    resource: 10
                }
            ]
        );
        g.stop_waiting(1);
        assert_eq!(g.find_cycle(), None);
    }

    #[test]
    fn cycle_not_through_the_first_waiter() {
        // 0 waits on 1's lock; 1, 2, 3 form a cycle.
        let mut g = WaitForGraph::new();
        g.hold(1, 101);
        g.hold(2, 102);
        g.hold(3, 103);
        g.wait(0, 101);
        g.wait(1, 102);
        g.wait(2, 103);
        g.wait(3, 101);
        let c = g.find_cycle().unwrap();
        let threads: Vec<_> = c.iter().map(|e| e.thread).collect();
        assert_eq!(threads, vec![1, 2, 3]);
        // Each waits for a resource the next one holds.
        for (k, e) in c.iter().enumerate() {
            let next = c[(k + 1) % c.len()].thread;
            assert!(g.holders[&e.resource].contains(&next));
        }
    }

    #[test]
    fn shared_holders_and_releases() {
        let mut g = WaitForGraph::new();
        g.hold(0, 1);
        g.hold(1, 1); // shared
        g.hold(2, 2);
        g.wait(2, 1);
        g.wait(1, 2);
        assert!(g.find_cycle().is_some());
        g.release(1, 1);
        assert_eq!(
            g.find_cycle(),
            None,
            "only 0, which waits for nothing, holds 1"
        );
        g.wait(0, 2);
        let c = g.find_cycle().unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn self_wait_is_a_cycle() {
        let mut g = WaitForGraph::new();
        g.hold(4, 9);
        g.wait(4, 9);
        assert_eq!(
            g.find_cycle(),
            Some(vec![CycleEdge {
                thread: 4,
                resource: 9
            }])
        );
    }
}
