//! ns per `analyse` for the seed statements, parsed every time vs cached.
//! Run with `cargo bench -p frontrun-sql`.

use std::hint::black_box;
use std::time::Instant;

use frontrun_sql::{analyse, analyse_uncached, Dialect, KeyColumns, Param, Params};

const SEEDS: &[(&str, &[Param])] = &[
    ("SELECT balance FROM accounts WHERE name='alice'", &[]),
    (
        "UPDATE accounts SET balance=%s WHERE name='alice'",
        &[Param::Int(1100)],
    ),
    ("SELECT * FROM accounts WHERE name='alice' FOR UPDATE", &[]),
    ("SELECT counter FROM counts", &[]),
    ("INSERT INTO counts (counter) VALUES (%s)", &[Param::Int(1)]),
    (
        "SELECT * FROM accounts WHERE name = ANY(ARRAY['alice','bob']) ORDER BY name FOR UPDATE",
        &[],
    ),
    ("BEGIN", &[]),
    ("COMMIT", &[]),
];

/// Median of five timed batches, in ns per call.
fn ns_per_call(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

fn main() {
    let d = Dialect::PostgreSql;
    println!(
        "{:<60} {:>12} {:>12} {:>8} {:>12}",
        "statement", "uncached ns", "cached ns", "ratio", "resources ns"
    );
    let (mut total_u, mut total_c) = (0.0, 0.0);
    for (sql, params) in SEEDS {
        let uncached = ns_per_call(2_000, || {
            black_box(analyse_uncached(
                black_box(sql),
                Params::positional(params),
                d,
            ));
        });
        let cached = ns_per_call(20_000, || {
            black_box(analyse(black_box(sql), params, d));
        });
        let fp = analyse(sql, params, d);
        let mut keys = KeyColumns::new();
        let resources = ns_per_call(20_000, || {
            black_box(fp.resources(&mut keys));
        });
        total_u += uncached;
        total_c += cached;
        let shown: String = sql.chars().take(58).collect();
        println!(
            "{shown:<60} {uncached:>12.0} {cached:>12.0} {:>7.1}x {resources:>12.0}",
            uncached / cached
        );
    }
    println!(
        "mean over seeds: uncached {:.0} ns, cached {:.0} ns, {:.1}x",
        total_u / SEEDS.len() as f64,
        total_c / SEEDS.len() as f64,
        total_u / total_c
    );
}
