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
    /// Take re-entrant lock `r` (free, or already held by this thread).
    RLock(usize),
    /// Give back one level of re-entrant lock `r`.
    RUnlock(usize),
    /// `Condition(lock c).wait()`, first half: release plain lock `c` (held)
    /// and join `c`'s waiters. The wait goes on with [`Op::WaitWake`], then a
    /// `Lock(c)` re-acquires, as the driver's condition does.
    WaitRelease(usize),
    /// Blocks until a notify of condition `c` picked this thread.
    WaitWake(usize),
    /// `Condition(lock c).notify()`: wakes the longest waiter, if any.
    Notify(usize),
    /// A database statement reading row `r` (no lock).
    RowRead(usize),
    /// A database statement writing row `r`: takes the row's lock, held to
    /// the transaction's end; blocks while another transaction holds it.
    RowWrite(usize),
    /// The transaction's commit: releases every row lock it took.
    Commit,
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
const RLOCK_BASE: u64 = 3000;
const COND_BASE: u64 = 4000;
const ROW_BASE: u64 = 5000;
const ROW_LOCK_BASE: u64 = 6000;

#[derive(Clone, Debug)]
pub struct Program {
    pub threads: Vec<Vec<Op>>,
    /// Threads `0..initial` run from the start; the others wait for a `Spawn`.
    pub initial: usize,
    pub vars: usize,
    pub locks: usize,
    /// Re-entrant locks; a condition `c` uses plain lock `c`.
    pub rlocks: usize,
    pub conds: usize,
    /// Database rows, each with its row lock.
    pub rows: usize,
}

impl Program {
    pub fn new(threads: Vec<Vec<Op>>, vars: usize, locks: usize) -> Self {
        let initial = threads.len();
        Program {
            threads,
            initial,
            vars,
            locks,
            rlocks: 0,
            conds: 0,
            rows: 0,
        }
    }

    /// How many times thread `t` holds re-entrant lock `r` before step `pc`.
    fn rlock_depth(&self, t: ThreadId, pc: usize, r: usize) -> usize {
        self.threads[t][..pc].iter().fold(0, |d, op| match *op {
            Op::RLock(x) if x == r => d + 1,
            Op::RUnlock(x) if x == r => d - 1,
            _ => d,
        })
    }

    /// Row locks thread `t` holds before its step `pc`: those its writes
    /// since its last commit took (only it takes them for itself).
    fn rows_held(&self, t: ThreadId, pc: usize) -> Vec<usize> {
        let mut held = Vec::new();
        for op in &self.threads[t][..pc] {
            match *op {
                Op::RowWrite(r) if !held.contains(&r) => held.push(r),
                Op::Commit => held.clear(),
                _ => {}
            }
        }
        held
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
            // As the driver's RLock: only the outermost acquire and release
            // touch the lock; nested ones are private to the owner.
            Op::RLock(r) if self.rlock_depth(t, pc, r) == 0 => {
                vec![acc(RLOCK_BASE + r as u64, AccessKind::Acquire)]
            }
            Op::RUnlock(r) if self.rlock_depth(t, pc, r) == 1 => {
                vec![acc(RLOCK_BASE + r as u64, AccessKind::Release)]
            }
            Op::RLock(_) | Op::RUnlock(_) => vec![],
            Op::WaitRelease(c) => vec![acc(LOCK_BASE + c as u64, AccessKind::Release)],
            Op::WaitWake(c) | Op::Notify(c) => vec![acc(COND_BASE + c as u64, AccessKind::Write)],
            Op::RowRead(r) => vec![acc(ROW_BASE + r as u64, AccessKind::Read)],
            Op::RowWrite(r) => {
                // As the SQL layer: the row lock's acquisition only on a
                // transaction's first write of the row, in the same event.
                let mut v = vec![acc(ROW_BASE + r as u64, AccessKind::Write)];
                if !self.rows_held(t, pc).contains(&r) {
                    v.push(acc(ROW_LOCK_BASE + r as u64, AccessKind::Acquire));
                }
                v
            }
            Op::Commit => self
                .rows_held(t, pc)
                .into_iter()
                .map(|r| acc(ROW_LOCK_BASE + r as u64, AccessKind::Release))
                .collect(),
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
    /// Owner and depth of each re-entrant lock.
    pub rlocks: Vec<(Option<ThreadId>, u32)>,
    /// Each condition's waiters, in wait order, and whether notified.
    pub waiters: Vec<Vec<(ThreadId, bool)>>,
    pub rows: Vec<i64>,
    pub row_locks: Vec<Option<ThreadId>>,
}

impl State {
    pub fn new(p: &Program) -> Self {
        State {
            vars: vec![0; p.vars],
            locks: vec![None; p.locks],
            pcs: vec![0; p.threads.len()],
            accs: vec![0; p.threads.len()],
            started: p.initial,
            rlocks: vec![(None, 0); p.rlocks],
            waiters: vec![Vec::new(); p.conds],
            rows: vec![0; p.rows],
            row_locks: vec![None; p.rows],
        }
    }

    /// What a run leaves behind that the program can observe: variables,
    /// then rows.
    pub fn outcome(&self) -> Vec<i64> {
        self.vars.iter().chain(&self.rows).copied().collect()
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
            Op::RLock(r) => self.rlocks[r].0.is_none_or(|o| o == t),
            Op::WaitWake(c) => self.waiters[c].contains(&(t, true)),
            Op::RowWrite(r) => self.row_locks[r].is_none_or(|o| o == t),
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
            Op::RLock(r) => {
                assert!(self.rlocks[r].0.is_none_or(|o| o == t));
                self.rlocks[r] = (Some(t), self.rlocks[r].1 + 1);
            }
            Op::RUnlock(r) => {
                assert_eq!(self.rlocks[r].0, Some(t));
                let depth = self.rlocks[r].1 - 1;
                self.rlocks[r] = ((depth > 0).then_some(t), depth);
            }
            Op::WaitRelease(c) => {
                assert_eq!(self.locks[c], Some(t), "wait without the lock");
                self.locks[c] = None;
                self.waiters[c].push((t, false));
            }
            Op::WaitWake(c) => self.waiters[c].retain(|&w| w != (t, true)),
            Op::Notify(c) => {
                if let Some(w) = self.waiters[c].iter_mut().find(|w| !w.1) {
                    w.1 = true;
                }
            }
            Op::RowRead(r) => {
                self.accs[t] = self.accs[t].wrapping_mul(31).wrapping_add(self.rows[r] + 1)
            }
            Op::RowWrite(r) => {
                assert!(self.row_locks[r].is_none_or(|o| o == t));
                self.row_locks[r] = Some(t);
                self.rows[r] = self.accs[t].wrapping_add(t as i64 + 1);
            }
            Op::Commit => {
                for l in self.row_locks.iter_mut().filter(|l| **l == Some(t)) {
                    *l = None;
                }
            }
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
    /// Every final outcome, with whether some thread was left stuck.
    pub outcomes: HashSet<(Vec<i64>, bool)>,
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
            run_serially(p, &mut st, t);
        }
        // Threads started but never joined run after their starters.
        while let Some(c) = (0..st.started).find(|&c| st.enabled(p, c) == Some(true)) {
            run_serially(p, &mut st, c);
        }
        if (0..st.started).all(|t| st.enabled(p, t).is_none()) {
            out.insert(st.outcome());
        }
    });
    out
}

/// Run `t` as far as it goes on its own; a join first runs the joined
/// thread the same way.
fn run_serially(p: &Program, st: &mut State, t: ThreadId) {
    loop {
        while st.enabled(p, t) == Some(true) {
            st.step(p, t);
        }
        match p.threads[t].get(st.pcs[t]) {
            Some(&Op::Join(c)) if c < st.started && st.enabled(p, c) == Some(true) => {
                run_serially(p, st, c);
            }
            _ => return,
        }
    }
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
    stuck || !serial.contains(&st.outcome())
}

pub fn brute_force(p: &Program) -> Brute {
    let serial = serial_outcomes(p);
    let mut b = Brute {
        reps: Default::default(),
        traces: 0,
        interleavings: 0,
        violation: false,
        outcomes: HashSet::new(),
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
        b.outcomes.insert(outcome_of(p, st));
    }
}

/// A run's outcome as [`Brute::outcomes`] records it: variables, rows,
/// what each thread read, and whether a thread was left stuck.
pub fn outcome_of(p: &Program, st: &State) -> (Vec<i64>, bool) {
    let stuck = (0..st.started).any(|t| st.enabled(p, t).is_some());
    let seen = st.outcome().into_iter().chain(st.accs.iter().copied());
    (seen.collect(), stuck)
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

/// Which of the richer constructs [`random_program_rich`] may use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rich {
    /// Thread 0 starts one more thread, and may join it.
    pub spawn: bool,
    /// Sections under a re-entrant lock, taken once or twice.
    pub rlock: bool,
    /// A waiter and a notifier on one condition (under its lock).
    pub condvar: bool,
    /// Transactions: row reads and writes (row locks) ending in a commit.
    pub db: bool,
}

/// A random program (2–3 threads, plus a started one) built from reads,
/// writes and the constructs `rich` allows; small enough for brute force.
pub fn random_program_rich(seed: u64, rich: Rich) -> Program {
    let mut r = SplitMix64::new(seed);
    let n = 2 + r.below(2) as usize;
    let vars = 1 + r.below(2) as usize;
    let rows = if rich.db { 1 + r.below(2) as usize } else { 0 };
    let max_ops = if n == 2 { 3 } else { 2 };
    let mut threads: Vec<Vec<Op>> = Vec::new();
    for _ in 0..n {
        let k = 1 + r.below(max_ops) as usize;
        let mut ops = Vec::new();
        for _ in 0..k {
            let v = r.below(vars as u64) as usize;
            let pick = r.below(if rich.db { 6 } else { 3 });
            ops.push(match pick {
                0 => Op::Read(v),
                1 => Op::Write(v),
                2 => Op::Local,
                3 => Op::RowRead(r.below(rows as u64) as usize),
                _ => Op::RowWrite(r.below(rows as u64) as usize),
            });
        }
        if rich.db
            && ops
                .iter()
                .any(|o| matches!(o, Op::RowRead(_) | Op::RowWrite(_)))
        {
            // Sometimes commit midway too: a second transaction follows.
            let at = r.below(ops.len() as u64 + 1) as usize;
            if at < ops.len() && r.below(2) == 0 {
                ops.insert(at, Op::Commit);
            }
            ops.push(Op::Commit);
        }
        if rich.rlock && r.below(2) == 0 {
            let lo = r.below(ops.len() as u64) as usize;
            let hi = lo + 1 + r.below((ops.len() - lo) as u64) as usize;
            let twice = r.below(2) == 0;
            let mut wrapped = ops[..lo].to_vec();
            wrapped.push(Op::RLock(0));
            wrapped.extend_from_slice(&ops[lo..hi]);
            if twice {
                // Re-entered around part of the section.
                wrapped.insert(wrapped.len() - 1, Op::RLock(0));
                wrapped.push(Op::RUnlock(0));
            }
            wrapped.push(Op::RUnlock(0));
            wrapped.extend_from_slice(&ops[hi..]);
            ops = wrapped;
        }
        threads.push(ops);
    }
    let mut locks = 0;
    let mut conds = 0;
    if rich.condvar {
        locks = 1;
        conds = 1;
        let v = r.below(vars as u64) as usize;
        let (waiter, notifier) = (0, 1 + r.below(n as u64 - 1) as usize);
        threads[waiter].extend([
            Op::Lock(0),
            Op::WaitRelease(0),
            Op::WaitWake(0),
            Op::Lock(0),
            Op::Read(v),
            Op::Unlock(0),
        ]);
        let at = r.below(threads[notifier].len() as u64 + 1) as usize;
        threads[notifier].splice(
            at..at,
            [Op::Lock(0), Op::Write(v), Op::Notify(0), Op::Unlock(0)],
        );
    }
    let mut initial = n;
    if rich.spawn {
        let v = r.below(vars as u64) as usize;
        let child = vec![
            if r.below(2) == 0 {
                Op::Write(v)
            } else {
                Op::Read(v)
            },
            Op::Local,
        ];
        let at = r.below(threads[0].len() as u64 + 1) as usize;
        threads[0].insert(at, Op::Spawn(n));
        if r.below(2) == 0 {
            let j = at + 1 + r.below((threads[0].len() - at) as u64) as usize;
            threads[0].insert(j, Op::Join(n));
        }
        threads.push(child);
        initial = n;
    }
    let mut p = Program::new(threads, vars, locks);
    p.initial = initial;
    p.rlocks = usize::from(rich.rlock);
    p.conds = conds;
    p.rows = rows;
    p
}
