//! Wakeup trees (Abdulla, Aronis, Jonsson, Sagonas, "Optimal Dynamic Partial
//! Order Reduction", POPL 2014): an ordered tree of event sequences still to
//! explore from a node. Children are kept in insertion order, which is the
//! order they are explored in.

use super::race::TraceView;
use super::sequence::Sequence;
use super::step::Executed;
use crate::event::{Event, ThreadId};

/// The branches still to explore below one point.
#[derive(Clone, Debug, Default)]
pub(crate) struct WakeupTree {
    pub children: Vec<WuNode>,
}

/// One step `thread: event` of a wakeup sequence, with its continuations.
#[derive(Clone, Debug)]
pub(crate) struct WuNode {
    pub thread: ThreadId,
    pub event: Event,
    pub sub: WakeupTree,
    /// The fewest preemptions of the schedules inserted through this step,
    /// prefix included. Only a search by passes of growing bound reads it.
    pub cost: u32,
}

impl WakeupTree {
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Remove and return the leftmost branch.
    pub fn pop_first(&mut self) -> Option<WuNode> {
        if self.children.is_empty() {
            None
        } else {
            Some(self.children.remove(0))
        }
    }

    /// The leftmost branch's cost: the next one to run here. Branches run
    /// in order even in a search by passes (a later branch was inserted
    /// knowing the earlier ones would run first: it may rely on their
    /// subtrees, and their sleep sets must not hold it).
    pub fn first_cost(&self) -> Option<u32> {
        self.children.first().map(|c| c.cost)
    }

    /// Insert the sequence `v` (trace positions) unless the tree already has
    /// a branch that covers it: walk down through children that are weak
    /// initials of what remains of `v`; reaching a leaf means some explored
    /// continuation is equivalent to an extension of `v`. Returns whether a
    /// new branch was added. `cost` (the preemptions of the schedule) lowers
    /// the cost of the branch it goes through.
    pub fn insert<N: Executed>(
        &mut self,
        mut v: Sequence,
        view: &TraceView<'_, N>,
        cost: u32,
    ) -> bool {
        let mut node = self;
        loop {
            let hit =
                node.children.iter().enumerate().find_map(|(idx, c)| {
                    view.weak_initial(c.thread, &c.event, &v).map(|k| (idx, k))
                });
            match hit {
                Some((idx, k)) => {
                    let c = &mut node.children[idx].cost;
                    *c = (*c).min(cost);
                    if node.children[idx].sub.is_empty() {
                        return false;
                    }
                    if let Some(k) = k {
                        v.consume(k);
                    }
                    node = &mut node.children[idx].sub;
                }
                None if v.is_empty() => return false,
                None => {
                    let rest: Vec<usize> = v.remaining().collect();
                    node.children.push(chain(&rest, view, cost));
                    return true;
                }
            }
        }
    }
}

/// Dropped iteratively: a wakeup sequence as long as a long execution is a
/// chain that deep, and recursive drop would overflow the stack.
impl Drop for WakeupTree {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut n) = pending.pop() {
            pending.append(&mut n.sub.children);
        }
    }
}

/// The linear branch `v[0] → v[1] → …`.
fn chain<N: Executed>(v: &[usize], view: &TraceView<'_, N>, cost: u32) -> WuNode {
    let mut sub = WakeupTree::default();
    for &k in v[1..].iter().rev() {
        let n = WuNode {
            thread: view.thread(k),
            event: view.event(k).clone(),
            sub,
            cost,
        };
        sub = WakeupTree { children: vec![n] };
    }
    WuNode {
        thread: view.thread(v[0]),
        event: view.event(v[0]).clone(),
        sub,
        cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million-step chain is dropped on a thread with a 256 KiB stack.
    #[test]
    fn deep_chain_drops_without_recursion() {
        let mut tree = WakeupTree::default();
        for t in 0..1_000_000 {
            tree = WakeupTree {
                children: vec![WuNode {
                    thread: t % 3,
                    event: Event::default(),
                    sub: tree,
                    cost: 0,
                }],
            };
        }
        let h = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || drop(tree))
            .expect("spawn the dropping thread");
        h.join().expect("dropping a deep wakeup tree");
    }
}
