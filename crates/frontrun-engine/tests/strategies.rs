//! Random, PCT and replay strategies, and replay tokens, on the interpreter.

mod common;

// Step numbering here is the program's own (no start points), so these tests
// ask the strategies directly rather than through the scheduling core.
use common::{explore_direct as explore, run_one_direct as run_one, uniform, Op, Program};
use frontrun_engine::error::{DivergenceReason, EngineError};
use frontrun_engine::strategy::dpor::{Dpor, DporConfig};
use frontrun_engine::strategy::pct::Pct;
use frontrun_engine::strategy::random::RandomStrategy;
use frontrun_engine::strategy::replay::Replay;
use frontrun_engine::strategy::{Choice, Strategy};
use frontrun_engine::token;

fn counter(n: usize) -> Program {
    uniform(n, &[Op::Local, Op::Read(0), Op::Local, Op::Write(0)], 1, 0)
}

fn schedules(runs: &[common::Run]) -> Vec<Vec<(usize, usize)>> {
    runs.iter().map(|r| r.steps.clone()).collect()
}

#[test]
fn random_is_deterministic_per_seed_and_runs_every_attempt() {
    let p = counter(3);
    let a = explore(&p, &mut RandomStrategy::new(5, 50), 1000);
    let b = explore(&p, &mut RandomStrategy::new(5, 50), 1000);
    let c = explore(&p, &mut RandomStrategy::new(6, 50), 1000);
    assert_eq!(a.len(), 50);
    assert_eq!(schedules(&a), schedules(&b));
    assert_ne!(schedules(&a), schedules(&c));
    assert!(a.iter().all(|r| r.end == Choice::AllFinished));
    assert!(
        a.iter().any(|r| r.state.vars[0] != 3),
        "random missed the lost update in 50 runs"
    );
}

#[test]
fn pct_is_deterministic_finds_the_race_and_learns_the_length() {
    let p = counter(2);
    let mut s = Pct::new(11, 2, 100);
    let a = explore(&p, &mut s, 1000);
    assert_eq!(a.len(), 100);
    assert!(s.finished());
    assert_eq!(
        s.estimated_steps(),
        8,
        "k should be the longest execution seen"
    );
    let b = explore(&p, &mut Pct::new(11, 2, 100), 1000);
    assert_eq!(schedules(&a), schedules(&b));
    assert!(
        a.iter().any(|r| r.state.vars[0] != 2),
        "PCT depth 2 missed the lost update"
    );
    // Depth 1 never changes priorities: every execution is serial.
    let serial = explore(&p, &mut Pct::new(3, 1, 20), 100);
    for r in &serial {
        let switches = r.steps.windows(2).filter(|w| w[0].0 != w[1].0).count();
        assert_eq!(switches, 1, "{:?}", r.steps);
    }
    assert!(serial.iter().all(|r| r.state.vars[0] == 2));
}

#[test]
fn replay_token_reproduces_a_dpor_failure() {
    let p = counter(3);
    let mut d = Dpor::new(DporConfig::default());
    let mut failing = None;
    while let Some(r) = run_one(&p, &mut d) {
        if r.state.vars[0] != 3 {
            failing = Some((d.schedule().to_vec(), r));
            break;
        }
    }
    let (sched, run) = failing.expect("DPOR finds the lost update");
    let tok = token::encode(&sched);
    let decoded = token::decode(&tok).unwrap();
    let mut replay = Replay::new(decoded).with_runs(3);
    let runs = explore(&p, &mut replay, 10);
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r.steps, run.steps);
        assert_eq!(r.state, run.state);
    }
    assert!(replay.followed_exactly() && replay.divergence().is_none());
}

#[test]
fn replay_reports_divergence() {
    let p = uniform(2, &[Op::Read(0), Op::Write(0)], 1, 0);
    // Thread 0 has two steps; a third one cannot be followed.
    let mut replay = Replay::new(vec![0, 0, 0, 1, 1]);
    let r = run_one(&p, &mut replay).unwrap();
    assert_eq!(
        r.end,
        Choice::AllFinished,
        "after a divergence the run still ends"
    );
    assert_eq!(
        replay.divergence(),
        Some(&EngineError::ReplayDivergence {
            step: 2,
            thread: 0,
            reason: DivergenceReason::Finished
        })
    );
    assert!(!replay.followed_exactly());
    assert!(replay.divergence().unwrap().to_string().contains("step 2"));
    // A lock holder makes a recorded step impossible: Disabled.
    let q = uniform(2, &[Op::Lock(0), Op::Unlock(0)], 0, 1);
    let mut replay = Replay::new(vec![0, 1]);
    run_one(&q, &mut replay).unwrap();
    assert!(matches!(
        replay.divergence(),
        Some(EngineError::ReplayDivergence {
            step: 1,
            thread: 1,
            reason: DivergenceReason::Disabled
        })
    ));
    let mut replay = Replay::new(vec![7]);
    run_one(&q, &mut replay).unwrap();
    assert!(matches!(
        replay.divergence(),
        Some(EngineError::ReplayDivergence {
            reason: DivergenceReason::Unknown,
            ..
        })
    ));
    assert!(!replay.begin_execution(), "one run by default");
}

#[test]
fn strategies_report_deadlock() {
    let p = Program::new(
        vec![
            vec![Op::Lock(0), Op::Lock(1), Op::Unlock(1), Op::Unlock(0)],
            vec![Op::Lock(1), Op::Lock(0), Op::Unlock(0), Op::Unlock(1)],
        ],
        0,
        2,
    );
    let runs = explore(&p, &mut RandomStrategy::new(1, 200), 1000);
    assert!(runs.iter().any(|r| r.end == Choice::Deadlock));
    let mut replay = Replay::new(vec![0, 1]);
    assert_eq!(run_one(&p, &mut replay).unwrap().end, Choice::Deadlock);
}
