//! Optimal DPOR against hand-made programs with known trace counts.

mod common;

use std::collections::HashSet;

use common::{canonical, explore, serial_outcomes, uniform, violates, Op, Program};
use frontrun_engine::strategy::dpor::{Dpor, DporConfig, SearchOrder};
use frontrun_engine::strategy::Choice;

fn run(p: &Program, config: DporConfig) -> (Vec<common::Run>, Dpor) {
    let mut d = Dpor::new(config);
    let runs = explore(p, &mut d, 100_000);
    (runs, d)
}

fn distinct(p: &Program, runs: &[common::Run]) -> usize {
    runs.iter()
        .map(|r| canonical(p, &r.steps))
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn lost_update_counter_runs_every_trace_once() {
    for (n, expected) in [(2, 4), (3, 36), (4, 576)] {
        let p = uniform(n, &[Op::Read(0), Op::Write(0)], 1, 0);
        let (runs, d) = run(&p, DporConfig::default());
        assert_eq!(runs.len(), expected, "{n} threads");
        assert_eq!(
            distinct(&p, &runs),
            expected,
            "{n} threads: redundant executions"
        );
        assert!(d.exhausted() && d.finished() && !d.stopped_by_limit());
        assert_eq!(d.stats().sleep_blocked, 0);
        assert!(
            runs.iter().any(|r| r.state.vars[0] != n as i64),
            "lost update not found"
        );
        assert!(runs.iter().any(|r| r.state.vars[0] == n as i64));
    }
}

#[test]
fn lock_protected_counter_runs_each_lock_order() {
    for (n, expected) in [(2, 2), (3, 6), (4, 24)] {
        let p = uniform(
            n,
            &[Op::Lock(0), Op::Read(0), Op::Write(0), Op::Unlock(0)],
            1,
            1,
        );
        let (runs, d) = run(&p, DporConfig::default());
        assert_eq!(runs.len(), expected, "{n} threads");
        assert_eq!(distinct(&p, &runs), expected);
        assert_eq!(d.stats().sleep_blocked, 0);
        assert!(runs
            .iter()
            .all(|r| r.state.vars[0] == n as i64 && r.end == Choice::AllFinished));
    }
}

#[test]
fn distinct_variables_need_one_execution() {
    let threads = (0..4)
        .map(|t| vec![Op::Read(t), Op::Write(t), Op::Local])
        .collect();
    let p = Program::new(threads, 4, 0);
    let (runs, d) = run(&p, DporConfig::default());
    assert_eq!(runs.len(), 1);
    assert!(d.exhausted());
}

#[test]
fn preemption_bound_never_adds_executions() {
    let progs = [
        uniform(3, &[Op::Read(0), Op::Write(0)], 1, 0),
        uniform(
            4,
            &[Op::Lock(0), Op::Read(0), Op::Write(0), Op::Unlock(0)],
            1,
            1,
        ),
        uniform(
            3,
            &[Op::Read(0), Op::Write(1), Op::Read(1), Op::Write(0)],
            2,
            0,
        ),
    ];
    for p in &progs {
        let full = run(p, DporConfig::default()).0.len();
        for bound in 0..4 {
            let (runs, d) = run(p, DporConfig::default().with_preemption_bound(bound));
            assert!(runs.len() <= full, "bound {bound}: {} > {full}", runs.len());
            assert!(d.finished() && !d.exhausted());
        }
    }
}

#[test]
fn lock_order_deadlock_is_found() {
    let p = Program::new(
        vec![
            vec![Op::Lock(0), Op::Lock(1), Op::Unlock(1), Op::Unlock(0)],
            vec![Op::Lock(1), Op::Lock(0), Op::Unlock(0), Op::Unlock(1)],
        ],
        0,
        2,
    );
    let (runs, d) = run(&p, DporConfig::default());
    assert!(runs.iter().any(|r| r.end == Choice::Deadlock));
    assert!(runs.iter().any(|r| r.end == Choice::AllFinished));
    assert_eq!(
        d.stats().deadlocks,
        runs.iter().filter(|r| r.end == Choice::Deadlock).count() as u64
    );
}

#[test]
fn max_executions_stops_and_is_reported() {
    let p = uniform(3, &[Op::Read(0), Op::Write(0)], 1, 0);
    let (runs, d) = run(&p, DporConfig::default().with_max_executions(5));
    assert_eq!(runs.len(), 5);
    assert!(d.stopped_by_limit() && !d.finished() && !d.exhausted());
}

#[test]
fn same_program_same_executions() {
    let p = uniform(
        3,
        &[Op::Read(0), Op::Write(0), Op::Read(1), Op::Write(1)],
        2,
        0,
    );
    for order in [
        SearchOrder::LowestFirst,
        SearchOrder::HighestFirst,
        SearchOrder::Random(7),
    ] {
        let a: Vec<_> = run(&p, DporConfig::default().with_search_order(order))
            .0
            .into_iter()
            .map(|r| r.steps)
            .collect();
        let b: Vec<_> = run(&p, DporConfig::default().with_search_order(order))
            .0
            .into_iter()
            .map(|r| r.steps)
            .collect();
        assert_eq!(a, b, "{order:?}");
    }
}

#[test]
fn search_orders_agree_on_the_trace_count() {
    let p = uniform(
        3,
        &[
            Op::Read(0),
            Op::Write(0),
            Op::Lock(0),
            Op::Write(1),
            Op::Unlock(0),
        ],
        2,
        1,
    );
    let counts: Vec<usize> = [
        SearchOrder::LowestFirst,
        SearchOrder::HighestFirst,
        SearchOrder::Random(1),
        SearchOrder::Random(2),
    ]
    .into_iter()
    .map(|o| run(&p, DporConfig::default().with_search_order(o)).0.len())
    .collect();
    let b = common::brute_force(&p);
    assert!(
        counts.iter().all(|&c| c == b.traces),
        "{counts:?} vs {}",
        b.traces
    );
}

#[test]
fn spawn_and_join_order_events() {
    // Thread 0 writes x, spawns 1, joins it, then reads x; thread 1 writes x.
    // The spawn and join edges leave a single trace.
    let mut p = Program::new(
        vec![
            vec![Op::Write(0), Op::Spawn(1), Op::Join(1), Op::Read(0)],
            vec![Op::Write(0)],
        ],
        1,
        0,
    );
    p.initial = 1;
    let (runs, _) = run(&p, DporConfig::default());
    assert_eq!(runs.len(), 1);
    // Without the join, the child's write races with the parent's read.
    let mut q = Program::new(
        vec![vec![Op::Spawn(1), Op::Read(0)], vec![Op::Write(0)]],
        1,
        0,
    );
    q.initial = 1;
    let (runs, _) = run(&q, DporConfig::default());
    assert_eq!(runs.len(), 2);
    assert_eq!(distinct(&q, &runs), 2);
    let _ = (serial_outcomes, violates);
}

#[test]
fn condition_waits_are_covered_without_hanging() {
    // Thread 1 waits for a flag thread 0 sets; reversing that race is
    // infeasible, which DPOR must survive (and still cover every trace).
    let progs = [
        Program::new(
            vec![
                vec![Op::Write(1), Op::Set(0)],
                vec![Op::Await(0), Op::Read(1), Op::Write(1)],
                vec![Op::Write(1)],
            ],
            2,
            0,
        ),
        Program::new(
            vec![
                vec![Op::Lock(0), Op::Set(0), Op::Write(1), Op::Unlock(0)],
                vec![Op::Await(0), Op::Lock(0), Op::Read(1), Op::Unlock(0)],
                vec![Op::Read(1), Op::Write(1)],
            ],
            2,
            1,
        ),
    ];
    for p in &progs {
        let b = common::brute_force(p);
        let (runs, d) = run(p, DporConfig::default());
        // Executions cut short (sleep-blocked) are not traces. Through the
        // real core (each thread first waits at an empty start point) the
        // first program costs one such execution.
        let complete: Vec<common::Run> = runs
            .iter()
            .filter(|r| r.end != frontrun_engine::strategy::Choice::SleepBlocked)
            .cloned()
            .collect();
        assert_eq!(
            distinct(p, &complete),
            b.traces,
            "every trace covered\n{p:?}\n{:?}",
            d.stats()
        );
        assert_eq!(complete.len(), b.traces, "{:?}", d.stats());
        assert!(runs.len() <= b.traces + 1, "{:?}", d.stats());
        assert!(d.finished());
    }
}

#[test]
fn spawn_and_join_programs_match_brute_force() {
    let mk = |threads: Vec<Vec<Op>>, initial: usize| {
        let mut p = Program::new(threads, 1, 1);
        p.initial = initial;
        p
    };
    let progs = [
        mk(
            vec![
                vec![Op::Spawn(1), Op::Write(0), Op::Join(1), Op::Read(0)],
                vec![Op::Read(0), Op::Write(0)],
            ],
            1,
        ),
        mk(
            vec![
                vec![
                    Op::Spawn(1),
                    Op::Spawn(2),
                    Op::Join(1),
                    Op::Join(2),
                    Op::Read(0),
                ],
                vec![Op::Write(0)],
                vec![Op::Read(0), Op::Write(0)],
            ],
            1,
        ),
        mk(
            vec![
                vec![
                    Op::Write(0),
                    Op::Read(0),
                    Op::Lock(0),
                    Op::Write(0),
                    Op::Unlock(0),
                ],
                vec![Op::Read(0), Op::Spawn(2), Op::Write(0)],
                vec![Op::Lock(0), Op::Read(0), Op::Unlock(0)],
            ],
            2,
        ),
    ];
    for p in &progs {
        let b = common::brute_force(p);
        let (runs, d) = run(p, DporConfig::default());
        assert_eq!(runs.len(), b.traces, "{p:?}\n{:?}", d.stats());
        assert_eq!(distinct(p, &runs), b.traces);
        assert!(b.traces > 1 || runs.len() == 1);
    }
}

/// Count DPOR executions for threads given directly as event lists.
fn count_events(threads: &[Vec<frontrun_engine::event::Event>]) -> usize {
    use frontrun_engine::strategy::{Outcome, Strategy, ThreadStatus};
    let mut d = Dpor::new(DporConfig::default());
    let mut n = 0;
    while d.begin_execution() {
        n += 1;
        let mut pcs = vec![0; threads.len()];
        loop {
            let st: Vec<ThreadStatus<'_>> = threads
                .iter()
                .zip(&pcs)
                .map(|(evs, &pc)| {
                    evs.get(pc)
                        .map_or(ThreadStatus::Finished, ThreadStatus::Enabled)
                })
                .collect();
            match d.choose(&st) {
                Choice::Run(t) => pcs[t] += 1,
                _ => break,
            }
        }
        d.end_execution(Outcome::Passed);
        assert!(n < 1000);
    }
    n
}

#[test]
fn keys_and_multi_access_events() {
    use frontrun_engine::event::{Access, Event, Key};
    let ev = |a: Vec<Access>| Event::new(a, 0);
    let t0 = vec![ev(vec![
        Access::read(1, Key::Exact(1)),
        Access::write(1, Key::Exact(2)),
    ])];
    // Whole-object write overlaps every key: the two orders differ.
    assert_eq!(
        count_events(&[t0.clone(), vec![ev(vec![Access::write(1, Key::Any)])]]),
        2
    );
    // Another key of the same object: independent.
    assert_eq!(
        count_events(&[t0.clone(), vec![ev(vec![Access::write(1, Key::Exact(3))])]]),
        1
    );
    // A read of a key the multi-access event writes: dependent.
    assert_eq!(
        count_events(&[t0.clone(), vec![ev(vec![Access::read(1, Key::Exact(2))])]]),
        2
    );
    // Reads of the key it reads: independent.
    assert_eq!(
        count_events(&[t0, vec![ev(vec![Access::read(1, Key::Exact(1))])]]),
        1
    );
}

/// `n` threads doing `body` between `pad` private read/write pairs before and
/// after, on a variable of their own (after `shared` variables): the private
/// work adds no trace, but makes executions long enough for the indexed race
/// detection and wakeup sequences long enough for their indexed construction.
fn padded(n: usize, body: &[Op], shared: usize, locks: usize, pad: usize) -> Program {
    let threads = (0..n)
        .map(|t| {
            let private =
                || (0..pad).flat_map(move |_| [Op::Read(shared + t), Op::Write(shared + t)]);
            private()
                .chain(body.iter().copied())
                .chain(private())
                .collect()
        })
        .collect();
    Program::new(threads, shared + n, locks)
}

#[test]
fn long_padded_programs_keep_exact_counts() {
    let counter = [Op::Read(0), Op::Write(0)];
    let locked = [Op::Lock(0), Op::Read(0), Op::Write(0), Op::Unlock(0)];
    for (n, racy, safe) in [(2, 4, 2), (3, 36, 6), (4, 576, 24)] {
        for (body, locks, expected) in [(&counter[..], 0, racy), (&locked[..], 1, safe)] {
            let p = padded(n, body, 1, locks, 30);
            let (runs, d) = run(&p, DporConfig::default());
            assert_eq!(runs.len(), expected, "{n} threads, {body:?}");
            assert_eq!(distinct(&p, &runs), expected, "{n} threads, {body:?}");
            assert!(d.exhausted());
            assert_eq!(d.stats().sleep_blocked, 0);
            assert!(
                d.stats().max_depth > 64,
                "executions too short to use the index"
            );
        }
    }
}
