//! Differential test: on random small programs, optimal DPOR runs exactly
//! one execution per Mazurkiewicz trace that brute-force enumeration of all
//! interleavings finds, and finds a violation iff brute force does.

mod common;

use std::collections::HashSet;

use common::{
    brute_force, canonical, explore, outcome_of, random_program, random_program_opts,
    random_program_rich, random_program_with, serial_outcomes, violates, Op, Program, Rich,
};
use frontrun_engine::strategy::dpor::{Dpor, DporConfig, SearchOrder};
use frontrun_engine::strategy::Choice;

fn check(seed: u64, order: SearchOrder) -> (usize, usize, bool) {
    check_program(seed, order, random_program(seed), true)
}

fn check_program(seed: u64, order: SearchOrder, p: Program, exact: bool) -> (usize, usize, bool) {
    let config = DporConfig::default().with_search_order(order);
    check_config(seed, config, p, exact)
}

/// With `exact`, one execution per trace; otherwise every trace is run at
/// least once (condition waits may make DPOR attempt reversals that turn out
/// infeasible, which costs extra, sleep-blocked executions).
fn check_config(seed: u64, config: DporConfig, p: Program, exact: bool) -> (usize, usize, bool) {
    let order = config.search_order;
    let b = brute_force(&p);
    let mut d = Dpor::new(config);
    let runs = explore(&p, &mut d, 100_000);
    // A deterministic program replays every recorded prefix exactly.
    assert_eq!(
        frontrun_engine::strategy::Strategy::divergence(&d),
        None,
        "seed {seed}: false divergence\n{p:?}"
    );
    let serial = serial_outcomes(&p);
    let distinct: HashSet<_> = runs.iter().map(|r| canonical(&p, &r.steps)).collect();
    let found = runs
        .iter()
        .any(|r| r.end != Choice::SleepBlocked && violates(&p, &r.state, &serial));
    assert!(
        (exact && runs.len() == b.traces) || (!exact && runs.len() >= b.traces),
        "seed {seed} {order:?}: {} executions vs {} traces\n{p:?}\nstats {:?}",
        runs.len(),
        b.traces,
        d.stats()
    );
    if exact {
        assert_eq!(
            distinct.len(),
            runs.len(),
            "seed {seed}: redundant executions\n{p:?}"
        );
    } else {
        // Executions cut short (sleep-blocked) are not traces.
        let complete: HashSet<_> = runs
            .iter()
            .filter(|r| r.end != Choice::SleepBlocked)
            .map(|r| canonical(&p, &r.steps))
            .collect();
        assert_eq!(
            complete.len(),
            b.traces,
            "seed {seed}: traces missed\n{p:?}\n{:?}",
            d.stats()
        );
    }
    // Completed runs reach exactly the outcomes of all interleavings.
    let reached: HashSet<_> = runs
        .iter()
        .filter(|r| r.end != Choice::SleepBlocked)
        .map(|r| outcome_of(&p, &r.state))
        .collect();
    assert_eq!(
        reached, b.outcomes,
        "seed {seed}: outcome sets differ\n{p:?}"
    );
    assert_eq!(
        found, b.violation,
        "seed {seed}: violation found by DPOR {found}, brute force {}\n{p:?}",
        b.violation
    );
    if exact {
        assert_eq!(d.stats().sleep_blocked, 0, "seed {seed}");
    }
    assert!(d.exhausted());
    // A preemption bound only ever removes executions.
    for bound in 0..3 {
        let mut db = Dpor::new(
            DporConfig::default()
                .with_preemption_bound(bound)
                .with_search_order(order),
        );
        let n = explore(&p, &mut db, 100_000).len();
        assert!(
            n <= runs.len(),
            "seed {seed} bound {bound}: {n} > {}\n{p:?}",
            runs.len()
        );
    }
    (runs.len(), b.interleavings, b.violation)
}

#[test]
fn dpor_matches_brute_force_on_random_programs() {
    let mut total = (0, 0);
    let mut with_violation = 0;
    for seed in 0..300 {
        let (t, i, violation) = check(seed, SearchOrder::LowestFirst);
        total.0 += t;
        total.1 += i;
        with_violation += usize::from(violation);
    }
    // The generator must exercise both verdicts and real reduction.
    assert!(
        with_violation > 20 && with_violation < 280,
        "{with_violation}"
    );
    assert!(total.0 * 2 < total.1, "{total:?}");
}

#[test]
fn dpor_matches_brute_force_with_other_search_orders() {
    for seed in 300..400 {
        check(seed, SearchOrder::HighestFirst);
        check(seed, SearchOrder::Random(seed));
    }
}

#[test]
fn dpor_matches_brute_force_with_condition_waits() {
    let mut with_wait = 0;
    let (mut execs, mut traces) = (0, 0);
    for seed in 1000..1200 {
        let p = random_program_with(seed, true);
        with_wait += usize::from(
            p.threads
                .iter()
                .flatten()
                .any(|op| matches!(op, Op::Await(_))),
        );
        let b = brute_force(&p).traces;
        execs += check_program(seed, SearchOrder::LowestFirst, p, false).0;
        traces += b;
    }
    assert!(with_wait > 50, "{with_wait}");
    println!("condition waits: {execs} executions for {traces} traces");
    assert!(
        execs * 10 < traces * 13,
        "more than 30% redundant: {execs} for {traces}"
    );
}

#[test]
fn dpor_matches_brute_force_with_multi_access_and_whole_object_events() {
    let (mut wide, mut whole) = (0, 0);
    for seed in 2000..2200 {
        let p = random_program_opts(seed, false, true);
        let ops = || p.threads.iter().flatten();
        wide += usize::from(ops().any(|op| matches!(op, Op::Copy(..))));
        whole += usize::from(ops().any(|op| matches!(op, Op::ReadAll(_))));
        check_program(seed, SearchOrder::LowestFirst, p, true);
    }
    assert!(wide > 50 && whole > 50, "{wide} {whole}");
}

/// Passes of growing preemption bound only reorder the search: the same
/// traces, each run once, the same verdict, and exhausted at the end,
/// whatever the per-pass budget (1 forces a new pass after every execution,
/// so deferred prefixes are resumed across passes all the time).
#[test]
fn passes_of_growing_bound_match_brute_force() {
    let mut deferred = 0;
    // Debug builds (the brute force is slow there) run a third.
    let n = if cfg!(debug_assertions) { 100 } else { 300 };
    for (max_bound, budget) in [(2, u64::MAX), (1, 1), (3, 2)] {
        for seed in 0..n {
            let config = DporConfig::default().with_bound_passes(max_bound, budget);
            check_config(seed, config, random_program(seed), true);
        }
        for seed in 1000..1000 + n / 3 {
            let config = DporConfig::default().with_bound_passes(max_bound, budget);
            check_config(seed, config, random_program_with(seed, true), false);
        }
        for seed in 2000..2000 + n / 3 {
            let config = DporConfig::default().with_bound_passes(max_bound, budget);
            let p = random_program_opts(seed, false, true);
            let mut d = Dpor::new(config.clone());
            common::explore(&p, &mut d, 100_000);
            deferred += d.stats().deferred;
            check_config(seed, config, p, true);
        }
    }
    // The passes must actually defer branches.
    assert!(deferred > 100, "{deferred}");
}

/// Programs with one richer construct each, through the real scheduling
/// core; with `exact`, one execution per trace.
fn check_rich(seeds: std::ops::Range<u64>, rich: Rich, exact: bool) -> (usize, usize) {
    let (mut execs, mut traces) = (0, 0);
    for seed in seeds {
        let p = random_program_rich(seed, rich);
        traces += brute_force(&p).traces;
        execs += check_program(seed, SearchOrder::LowestFirst, p, exact).0;
    }
    (execs, traces)
}

#[test]
fn dpor_matches_brute_force_with_spawn_and_join() {
    let rich = Rich {
        spawn: true,
        ..Rich::default()
    };
    check_rich(3000..3150, rich, true);
}

#[test]
fn dpor_matches_brute_force_with_rlocks() {
    let rich = Rich {
        rlock: true,
        ..Rich::default()
    };
    check_rich(3200..3350, rich, true);
}

#[test]
fn dpor_matches_brute_force_with_row_locks_and_commits() {
    let rich = Rich {
        db: true,
        ..Rich::default()
    };
    check_rich(3400..3550, rich, true);
}

#[test]
fn dpor_matches_brute_force_with_condition_variables() {
    let rich = Rich {
        condvar: true,
        ..Rich::default()
    };
    check_rich(3600..3750, rich, true);
}
