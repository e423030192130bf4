//! Deadlock cycles among blocked threads.

use frontrun_engine::event::ThreadId;

use super::gate::BlockedThread;

/// A cycle of threads each waiting for the next (by owner edges), if any,
/// starting from the lowest thread id on it.
pub fn find_cycle(blocked: &[BlockedThread]) -> Option<Vec<ThreadId>> {
    let next = |t: ThreadId| {
        blocked
            .iter()
            .find(|b| b.tid == t)
            .and_then(|b| b.waits_for.owner())
    };
    for start in blocked.iter().map(|b| b.tid) {
        let mut path = vec![start];
        let mut cur = start;
        while let Some(n) = next(cur) {
            if let Some(pos) = path.iter().position(|&p| p == n) {
                let mut cycle = path[pos..].to_vec();
                let min = cycle.iter().enumerate().min_by_key(|(_, t)| **t)?.0;
                cycle.rotate_left(min);
                return Some(cycle);
            }
            path.push(n);
            cur = n;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::ops::Blocked;

    fn lock(tid: ThreadId, owner: ThreadId) -> BlockedThread {
        BlockedThread {
            tid,
            waits_for: Blocked::Lock {
                what: "Lock".into(),
                owner: Some(owner),
            },
        }
    }

    #[test]
    fn two_thread_cycle_is_found_and_normalised() {
        let c = find_cycle(&[lock(1, 0), lock(0, 1)]).expect("cycle");
        assert_eq!(c, vec![0, 1]);
    }

    #[test]
    fn chain_into_cycle_reports_only_the_cycle() {
        let c = find_cycle(&[lock(0, 1), lock(1, 2), lock(2, 1)]).expect("cycle");
        assert_eq!(c, vec![1, 2]);
    }

    #[test]
    fn waiting_on_a_signal_is_no_cycle() {
        let b = BlockedThread {
            tid: 0,
            waits_for: Blocked::Signal("Event".into()),
        };
        assert_eq!(find_cycle(&[b]), None);
    }
}
