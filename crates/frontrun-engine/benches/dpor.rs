//! Cost of the DPOR engine per execution, driven by the test interpreter.
//! Run: `cargo bench -p frontrun-engine --bench dpor`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{explore, run_one, uniform, Op, Program};
use frontrun_engine::strategy::dpor::{Dpor, DporConfig};

fn bench(name: &str, p: &common::Program, config: DporConfig, reps: u32) {
    let start = Instant::now();
    let mut execs = 0;
    for _ in 0..reps {
        let mut d = Dpor::new(config.clone());
        execs += explore(p, &mut d, usize::MAX).len();
    }
    let el = start.elapsed();
    println!(
        "{name:<48} {execs:>8} executions  {:>8.2} µs/execution  {:>10.0} executions/s",
        el.as_secs_f64() * 1e6 / execs as f64,
        execs as f64 / el.as_secs_f64()
    );
}

/// Per-event cost of long executions: the first `runs` executions of `p`
/// (the first is one thread after another; later ones interleave).
fn long(name: &str, p: &Program, runs: usize) {
    let mut d = Dpor::new(DporConfig::default().with_max_executions(runs as u64));
    let start = Instant::now();
    let mut events = 0;
    while let Some(r) = run_one(p, &mut d) {
        events += r.steps.len();
    }
    let el = start.elapsed();
    println!(
        "{name:<48} {events:>8} events  {:>8.3} µs/event  ({} races, {} branches)",
        el.as_secs_f64() * 1e6 / events as f64,
        d.stats().races,
        d.stats().branches
    );
}

/// `threads` threads doing `per_thread` events each, cycling through `body`.
fn cycled(threads: usize, per_thread: usize, body: impl Fn(usize, usize) -> Op) -> Program {
    let ts: Vec<Vec<Op>> = (0..threads)
        .map(|t| (0..per_thread).map(|i| body(t, i)).collect())
        .collect();
    Program::new(ts, 8, 2)
}

fn long_executions() {
    for per in [1_000, 5_000, 10_000] {
        // Races spanning the whole execution: thread 0 writes x first, the
        // others last, with private work in between.
        for threads in [2, 3] {
            let span = Program::new(
                (0..threads)
                    .map(|t| {
                        let private = (0..per).map(|i| {
                            if i % 2 == 0 {
                                Op::Read(1 + t)
                            } else {
                                Op::Write(1 + t)
                            }
                        });
                        if t == 0 {
                            std::iter::once(Op::Write(0)).chain(private).collect()
                        } else {
                            private.chain(std::iter::once(Op::Write(0))).collect()
                        }
                    })
                    .collect(),
                threads + 1,
                0,
            );
            long(
                &format!("{threads}x{per} private, races across them, 10 execs"),
                &span,
                10,
            );
        }
        for threads in [2, 3] {
            let shared = cycled(threads, per, |_, i| {
                if i % 2 == 0 {
                    Op::Read(i / 2 % 4)
                } else {
                    Op::Write(i / 2 % 4)
                }
            });
            long(
                &format!("{threads}x{per} read/write on 4 shared vars, 1 exec"),
                &shared,
                1,
            );
            long(
                &format!("{threads}x{per} read/write on 4 shared vars, 10 execs"),
                &shared,
                10,
            );
            let private = cycled(threads, per, |t, i| {
                if i % 2 == 0 {
                    Op::Read(t)
                } else {
                    Op::Write(t)
                }
            });
            long(
                &format!("{threads}x{per} read/write on private vars, 10 execs"),
                &private,
                10,
            );
            let locked = cycled(threads, per, |_, i| match i % 4 {
                0 => Op::Lock(0),
                1 => Op::Read(0),
                2 => Op::Write(0),
                _ => Op::Unlock(0),
            });
            long(
                &format!("{threads}x{per} locked read/write, 10 execs"),
                &locked,
                10,
            );
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "long") {
        long_executions();
        return;
    }
    let counter = [Op::Read(0), Op::Write(0)];
    bench(
        "lost-update counter, 2 threads (4 traces)",
        &uniform(2, &counter, 1, 0),
        DporConfig::default(),
        20_000,
    );
    bench(
        "lost-update counter, 3 threads (36 traces)",
        &uniform(3, &counter, 1, 0),
        DporConfig::default(),
        1_000,
    );
    bench(
        "lost-update counter, 4 threads (576 traces)",
        &uniform(4, &counter, 1, 0),
        DporConfig::default(),
        20,
    );
    let lock_counter = uniform(
        4,
        &[Op::Lock(0), Op::Read(0), Op::Write(0), Op::Unlock(0)],
        1,
        1,
    );
    for bound in [None, Some(0), Some(1), Some(2), Some(3)] {
        let mut c = DporConfig::default();
        if let Some(b) = bound {
            c = c.with_preemption_bound(b);
        }
        let n = explore(&lock_counter, &mut Dpor::new(c.clone()), usize::MAX).len();
        let m = explore(&uniform(4, &counter, 1, 0), &mut Dpor::new(c), usize::MAX).len();
        println!("preemption bound {bound:?}: lock-protected counter x4 {n} executions, lost-update counter x4 {m}");
    }
    let locked: Vec<Op> = (0..10)
        .flat_map(|_| [Op::Lock(0), Op::Read(0), Op::Write(0), Op::Unlock(0)])
        .collect();
    bench(
        "3 threads x 10 locked increments, first 20000",
        &uniform(3, &locked, 1, 1),
        DporConfig::default().with_max_executions(20_000),
        1,
    );
}
