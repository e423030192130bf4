//! A tiny abstract-program interpreter that drives a `Strategy` exactly the
//! way the real driver does (status of every thread at every point, lock
//! waiters reported `Disabled`), plus a brute-force enumerator of all
//! interleavings that counts Mazurkiewicz traces.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use frontrun_engine::coop::{Blocked, CoopOp};
use frontrun_engine::event::{Access, AccessKind, Event, Key, ThreadId};
use frontrun_engine::rng::SplitMix64;
use frontrun_engine::strategy::{Choice, Outcome, Strategy};
use frontrun_engine::turns::{Abort, Decision, PointOutcome, Turns};

/// One operation of an abstract thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `acc = acc * 31 + x + 1`
    Read(usize),
    /// `x = acc`
    Write(usize),
    Lock(usize),
    Unlock(usize),
    /// A scheduling point touching nothing shared.
    Local,
    /// Start thread `c` (which must be the next thread id to start).
    Spawn(usize),
    /// Wait for thread `c` to finish.
    Join(usize),
    /// `x = 1`
    Set(usize),
    /// Blocks until `x != 0`, then reads it (a condition wait: blocking that
    /// is not a lock, so DPOR may meet infeasible reversals).
    Await(usize),
    /// One event with two accesses: reads `a`, then `b = acc`.
    Copy(usize, usize),
    /// Reads the whole object holding variable `x` (every key of it: the
    /// variables `x` and `x ^ 1` share an object, see [`var_access`]).
    ReadAll(usize),
}

/// Variables `2k` and `2k + 1` are two keys of one object, so that
/// whole-object accesses conflict with both and keyed ones only with their
/// own key.
fn var_access(v: usize, kind: AccessKind) -> Access {
    Access {
        obj: VAR_BASE + (v / 2) as u64,
        key: Key::Exact((v % 2) as u64),
        kind,
    }
}

const VAR_BASE: u64 = 2000;

const LOCK_BASE: u64 = 1000;

#[derive(Clone, Debug)]
pub struct Program {
    pub threads: Vec<Vec<Op>>,
    /// Threads `0..initial` run from the start; the others wait for a `Spawn`.
    pub initial: usize,
    pub vars: usize,
    pub locks: usize,
}

impl Program {
    pub fn new(threads: Vec<Vec<Op>>, vars: usize, locks: usize) -> Self {
        let initial = threads.len();
        Program {
            threads,
            initial,
            vars,
            locks,
        }
    }

    fn event(&self, t: ThreadId, pc: usize) -> Event {
        let acc = |obj: u64, kind| Access {
            obj,
            key: Key::Exact(0),
            kind,
        };
        let accesses = match self.threads[t][pc] {
            Op::Read(v) | Op::Await(v) => vec![var_access(v, AccessKind::Read)],
            Op::Write(v) | Op::Set(v) => vec![var_access(v, AccessKind::Write)],
            Op::Copy(a, b) => vec![
                var_access(a, AccessKind::Read),
                var_access(b, AccessKind::Write),
            ],
            Op::ReadAll(v) => vec![Access {
                key: Key::Any,
                ..var_access(v, AccessKind::Read)
            }],
            Op::Lock(l) => vec![acc(LOCK_BASE + l as u64, AccessKind::Acquire)],
            Op::Unlock(l) => vec![acc(LOCK_BASE + l as u64, AccessKind::Release)],
            Op::Local => vec![],
            Op::Spawn(c) => vec![acc(c as u64, AccessKind::Spawn)],
            Op::Join(c) => vec![acc(c as u64, AccessKind::Join)],
        };
        Event::new(accesses, (t * 1000 + pc) as u64)
    }
}

/// Mutable state of one execution.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub vars: Vec<i64>,
    pub locks: Vec<Option<ThreadId>>,
    pub pcs: Vec<usize>,
    pub accs: Vec<i64>,
    /// Number of threads started (a prefix of the ids).
    pub started: usize,
}

impl State {
    pub fn new(p: &Program) -> Self {
        State {
            vars: vec![0; p.vars],
            locks: vec![None; p.locks],
            pcs: vec![0; p.threads.len()],
            accs: vec![0; p.threads.len()],
            started: p.initial,
        }
    }

    fn finished(&self, p: &Program, t: ThreadId) -> bool {
        self.pcs[t] >= p.threads[t].len()
    }

    pub fn enabled(&self, p: &Program, t: ThreadId) -> Option<bool> {
        if t >= self.started || self.finished(p, t) {
            return None;
        }
        Some(match p.threads[t][self.pcs[t]] {
            Op::Lock(l) => self.locks[l].is_none(),
            Op::Join(c) => c < self.started && self.finished(p, c),
            Op::Await(v) => self.vars[v] != 0,
            _ => true,
        })
    }

    pub fn step(&mut self, p: &Program, t: ThreadId) {
        match p.threads[t][self.pcs[t]] {
            Op::Read(v) | Op::Await(v) => {
                self.accs[t] = self.accs[t].wrapping_mul(31).wrapping_add(self.vars[v] + 1)
            }
            Op::Write(v) => self.vars[v] = self.accs[t],
            Op::Copy(a, b) => {
                self.accs[t] = self.accs[t].wrapping_mul(31).wrapping_add(self.vars[a] + 1);
                self.vars[b] = self.accs[t];
            }
            Op::ReadAll(v) => {
                let sibling = self.vars.get(v ^ 1).copied().unwrap_or(0);
                self.accs[t] = self.accs[t]
                    .wrapping_mul(31)
                    .wrapping_add(self.vars[v] * 7 + sibling + 1);
            }
            Op::Set(v) => self.vars[v] = 1,
            Op::Lock(l) => {
                assert!(self.locks[l].is_none());
                self.locks[l] = Some(t);
            }
            Op::Unlock(l) => {
                assert_eq!(self.locks[l], Some(t));
                self.locks[l] = None;
            }
            Op::Local | Op::Join(_) => {}
            Op::Spawn(c) => {
                assert_eq!(c, self.started, "threads must be spawned in id order");
                self.started += 1;
            }
        }
        self.pcs[t] += 1;
    }
}

/// How one driven execution ended.
#[derive(Clone, Debug)]
pub struct Run {
    pub state: State,
    pub end: Choice,
    /// `(thread, index within thread)` of each executed event, in order.
    pub steps: Vec<(ThreadId, usize)>,
}

/// Run one execution under `strategy`; `None` when it has nothing left.
pub fn run_one(p: &Program, strategy: &mut dyn Strategy) -> Option<Run> {
    if !strategy.begin_execution() {
        return None;
    }
    Some(run_one_started(p, strategy))
}

/// Run one execution whose `begin_execution` was already called.
///
/// The execution goes through the scheduling core the driver's gate runs
/// ([`Turns`]): each simulated thread, when it holds the turn, records its
/// next event with a cooperative operation that performs the program step;
/// the core asks the strategy, applies the chosen thread's operation and
/// hands it the turn. As in a real exploration, every started thread first
/// waits at an empty yield point, and a spawned thread exists (never
/// enabled) from the moment its parent reaches the spawn.
pub fn run_one_started(p: &Program, strategy: &mut dyn Strategy) -> Run {
    let shared = Arc::new(Mutex::new(Shared {
        state: State::new(p),
        steps: Vec::new(),
    }));
    let program = Arc::new(p.clone());
    let limit = p.threads.iter().map(Vec::len).sum::<usize>() + p.threads.len() + 1;
    let mut turns = Turns::new();
    for t in 0..p.initial {
        turns.add_thread(format!("t{t}"), true);
    }
    let mut decisions = 0;
    let mut next = turns.decide(Some(&mut *strategy));
    while let Decision::Run(u) = next {
        decisions += 1;
        assert!(decisions <= limit, "execution longer than the program");
        let pc = shared.lock().unwrap().state.pcs[u];
        if pc >= p.threads[u].len() {
            turns.finish(Some(&mut *strategy), u);
        } else {
            if let Op::Spawn(c) = p.threads[u][pc] {
                assert_eq!(turns.thread_count(), c, "threads are spawned in id order");
                turns.add_thread(format!("t{c}"), false);
            }
            let op = StepOp {
                shared: Arc::clone(&shared),
                program: Arc::clone(&program),
            };
            match turns.point(
                Some(&mut *strategy),
                u,
                p.event(u, pc),
                Some(Box::new(op)),
                None,
                None,
            ) {
                PointOutcome::Continue(_) | PointOutcome::Park { .. } => {}
                PointOutcome::Raise { abort, .. } => {
                    assert!(
                        turns.aborted().is_some(),
                        "raised {abort:?} without stopping"
                    );
                }
            }
        }
        next = match (turns.aborted(), turns.turn()) {
            (Some(_), _) => Decision::Stop,
            (None, Some(v)) => Decision::Run(v),
            (None, None) => Decision::Done,
        };
    }
    let end = match turns.aborted() {
        None => Choice::AllFinished,
        Some(Abort::Deadlock(_)) => Choice::Deadlock,
        Some(Abort::Pruned) => Choice::SleepBlocked,
        Some(a) => panic!("execution stopped: {a:?}"),
    };
    let outcome = if end == Choice::Deadlock {
        Outcome::Failed
    } else {
        Outcome::Passed
    };
    strategy.end_execution(outcome);
    let Shared { state, steps } = std::mem::replace(
        &mut *shared.lock().unwrap(),
        Shared {
            state: State::new(p),
            steps: Vec::new(),
        },
    );
    Run { state, end, steps }
}

/// The simulated program's memory, changed by the core when it runs a step.
struct Shared {
    state: State,
    steps: Vec<(ThreadId, usize)>,
}

/// The next program step of a thread, as the pending cooperative operation
/// of its scheduling point: enabled while the program says the step can run
/// (a free lock, a finished child, a set flag), applied when chosen.
struct StepOp {
    shared: Arc<Mutex<Shared>>,
    program: Arc<Program>,
}

impl CoopOp for StepOp {
    fn enabled(&self, tid: ThreadId, _finished: &[bool]) -> bool {
        self.shared
            .lock()
            .unwrap()
            .state
            .enabled(&self.program, tid)
            == Some(true)
    }

    fn apply(&mut self, tid: ThreadId, timed_out: bool) -> i64 {
        assert!(!timed_out, "no step is timed");
        let mut sh = self.shared.lock().unwrap();
        let pc = sh.state.pcs[tid];
        sh.steps.push((tid, pc));
        sh.state.step(&self.program, tid);
        1
    }

    fn blocked_on(&self) -> Blocked {
        Blocked::Signal("a program step".into())
    }
}

/// Like [`run_one_started`], but asking the strategy directly, without the
/// scheduling core: no start points, so step indices are the program's
/// (for tests of a strategy's own step numbering).
pub fn run_one_direct_started(p: &Program, strategy: &mut dyn Strategy) -> Run {
    let events: Vec<Vec<Event>> = (0..p.threads.len())
        .map(|t| (0..p.threads[t].len()).map(|pc| p.event(t, pc)).collect())
        .collect();
    let mut st = State::new(p);
    let mut steps = Vec::new();
    let limit = p.threads.iter().map(Vec::len).sum::<usize>() + 1;
    loop {
        let statuses: Vec<frontrun_engine::strategy::ThreadStatus<'_>> = (0..st.started)
            .map(|t| match st.enabled(p, t) {
                None => frontrun_engine::strategy::ThreadStatus::Finished,
                Some(true) => {
                    frontrun_engine::strategy::ThreadStatus::Enabled(&events[t][st.pcs[t]])
                }
                Some(false) => {
                    frontrun_engine::strategy::ThreadStatus::Disabled(&events[t][st.pcs[t]])
                }
            })
            .collect();
        let choice = strategy.choose(&statuses);
        match choice {
            Choice::Run(t) => {
                assert_eq!(
                    st.enabled(p, t),
                    Some(true),
                    "strategy chose a thread that cannot run"
                );
                steps.push((t, st.pcs[t]));
                st.step(p, t);
                assert!(steps.len() <= limit, "execution longer than the program");
            }
            end => {
                let outcome = if matches!(end, Choice::Deadlock) {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                };
                strategy.end_execution(outcome);
                return Run {
                    state: st,
                    end,
                    steps,
                };
            }
        }
    }
}

/// [`run_one`] without the scheduling core (see [`run_one_direct_started`]).
pub fn run_one_direct(p: &Program, strategy: &mut dyn Strategy) -> Option<Run> {
    if !strategy.begin_execution() {
        return None;
    }
    Some(run_one_direct_started(p, strategy))
}

/// [`explore`] without the scheduling core.
pub fn explore_direct(p: &Program, strategy: &mut dyn Strategy, cap: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    while let Some(r) = run_one_direct(p, strategy) {
        runs.push(r);
        assert!(runs.len() <= cap, "more than {cap} executions");
    }
    runs
}

/// Canonical form of a trace: how many events each thread ran, and the order
/// of every pair of conflicting events of different threads.
pub fn canonical(p: &Program, steps: &[(ThreadId, usize)]) -> Canonical {
    let events: Vec<Event> = steps.iter().map(|&(t, i)| p.event(t, i)).collect();
    let mut out = Vec::new();
    let mut counts = vec![0usize; p.threads.len()];
    for (a, &(ta, ia)) in steps.iter().enumerate() {
        counts[ta] += 1;
        for (b, &(tb, ib)) in steps.iter().enumerate().skip(a + 1) {
            if tb != ta && events[a].conflicts(&events[b]) {
                out.push((ta, ia, tb, ib));
            }
        }
    }
    out.sort_unstable();
    for (t, c) in counts.into_iter().enumerate() {
        out.push((usize::MAX, t, c, 0));
    }
    out
}

pub type Canonical = Vec<(usize, usize, usize, usize)>;

#[derive(Debug)]
pub struct Brute {
    pub traces: usize,
    /// One interleaving per trace, keyed by canonical form.
    pub reps: std::collections::HashMap<Canonical, Vec<(ThreadId, usize)>>,
    pub interleavings: usize,
    pub violation: bool,
}

/// Final variable states of running the threads one after another, in every
/// order (the "serializable" outcomes).
pub fn serial_outcomes(p: &Program) -> HashSet<Vec<i64>> {
    let n = p.initial;
    let mut out = HashSet::new();
    let mut perm: Vec<usize> = (0..n).collect();
    permutations(&mut perm, 0, &mut |order| {
        let mut st = State::new(p);
        for &t in order {
            while st.enabled(p, t) == Some(true) {
                st.step(p, t);
            }
        }
        if (0..n).all(|t| st.enabled(p, t).is_none()) {
            out.insert(st.vars.clone());
        }
    });
    out
}

fn permutations(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

/// Whether a final state violates the invariant: a deadlock, or variables
/// no serial order produces.
pub fn violates(p: &Program, st: &State, serial: &HashSet<Vec<i64>>) -> bool {
    let stuck = (0..st.started).any(|t| st.enabled(p, t).is_some());
    stuck || !serial.contains(&st.vars)
}

pub fn brute_force(p: &Program) -> Brute {
    let serial = serial_outcomes(p);
    let mut b = Brute {
        reps: Default::default(),
        traces: 0,
        interleavings: 0,
        violation: false,
    };
    let mut steps = Vec::new();
    dfs(p, &State::new(p), &mut steps, &serial, &mut b);
    b.traces = b.reps.len();
    b
}

fn dfs(
    p: &Program,
    st: &State,
    steps: &mut Vec<(ThreadId, usize)>,
    serial: &HashSet<Vec<i64>>,
    b: &mut Brute,
) {
    let mut any = false;
    for t in 0..st.started {
        if st.enabled(p, t) == Some(true) {
            any = true;
            let mut next = st.clone();
            steps.push((t, st.pcs[t]));
            next.step(p, t);
            dfs(p, &next, steps, serial, b);
            steps.pop();
        }
    }
    if !any {
        b.interleavings += 1;
        b.reps
            .entry(canonical(p, steps))
            .or_insert_with(|| steps.clone());
        if violates(p, st, serial) {
            b.violation = true;
        }
    }
}

/// Drive `strategy` to the end; returns every run.
pub fn explore(p: &Program, strategy: &mut dyn Strategy, cap: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    while let Some(r) = run_one(p, strategy) {
        runs.push(r);
        assert!(runs.len() <= cap, "more than {cap} executions");
    }
    runs
}

/// `n` threads each doing `ops`.
pub fn uniform(n: usize, ops: &[Op], vars: usize, locks: usize) -> Program {
    Program::new(vec![ops.to_vec(); n], vars, locks)
}

/// A random program: 2–4 threads, 1–3 variables, 0–2 locks, a few ops each;
/// lock sections are well nested (so locks taken in different orders by
/// different threads can deadlock).
pub fn random_program(seed: u64) -> Program {
    random_program_with(seed, false)
}

/// With `waits`, threads also set flags and wait for them (condition waits).
pub fn random_program_with(seed: u64, waits: bool) -> Program {
    random_program_opts(seed, waits, false)
}

/// With `wide`, threads also run events with two accesses (`Copy`) and
/// whole-object reads (`ReadAll`).
pub fn random_program_opts(seed: u64, waits: bool, wide: bool) -> Program {
    let mut r = SplitMix64::new(seed);
    let n = 2 + r.below(3) as usize;
    let vars = 1 + r.below(3) as usize;
    let locks = r.below(3) as usize;
    // Keep brute force small: fewer ops with more threads.
    let max_ops = match n {
        2 => 5,
        3 => 3,
        _ => 2,
    };
    let mut threads = Vec::new();
    for _ in 0..n {
        let mut ops = Vec::new();
        let k = 1 + r.below(max_ops) as usize;
        for _ in 0..k {
            let kinds = if waits { 7 } else { 5 };
            if wide && r.below(3) == 0 {
                let a = r.below(vars as u64) as usize;
                ops.push(if r.below(2) == 0 {
                    Op::Copy(a, r.below(vars as u64) as usize)
                } else {
                    Op::ReadAll(a)
                });
                continue;
            }
            ops.push(match r.below(kinds) {
                0 | 1 => Op::Read(r.below(vars as u64) as usize),
                2 | 3 => Op::Write(r.below(vars as u64) as usize),
                5 => Op::Set(r.below(vars as u64) as usize),
                6 => Op::Await(r.below(vars as u64) as usize),
                _ => Op::Local,
            });
        }
        if locks > 0 && r.below(2) == 0 {
            // Wrap a slice of the ops in one lock, or two nested ones.
            let a = r.below(locks as u64) as usize;
            let lo = r.below(ops.len() as u64) as usize;
            let hi = lo + 1 + r.below((ops.len() - lo) as u64) as usize;
            let mut wrapped = ops[..lo].to_vec();
            let nested = locks == 2 && r.below(2) == 0;
            wrapped.push(Op::Lock(a));
            if nested {
                wrapped.push(Op::Lock(1 - a));
            }
            wrapped.extend_from_slice(&ops[lo..hi]);
            if nested {
                wrapped.push(Op::Unlock(1 - a));
            }
            wrapped.push(Op::Unlock(a));
            wrapped.extend_from_slice(&ops[hi..]);
            ops = wrapped;
        }
        threads.push(ops);
    }
    Program::new(threads, vars, locks)
}
