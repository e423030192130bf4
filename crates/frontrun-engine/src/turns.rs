//! One execution's turn-taking decisions: which thread runs next, what each
//! one waits to do. This is the scheduling core the driver's gate runs (the
//! gate adds only thread parking, the run deadline and Python errors), and
//! the one the differential tests drive.
//!
//! Exactly one thread holds the *turn* at a time. At a scheduling point the
//! running thread records its pending event ([`Turns::point`]); the core asks
//! the strategy and applies the chosen thread's operation (lock taken, waiter
//! removed…) at once, so the state the strategy saw is the state that runs.
//!
//! Timed waits ([`CoopOp::timeout`]) never wait in real time. Timing out is a
//! scheduling choice like any other: a timed wait that cannot complete is
//! still reported enabled, and running it then means "it timed out". The
//! execution has a virtual clock, which only timeouts and sleeps advance
//! (by their duration, from when they started waiting).
//!
//! A thread may time out again right after a timeout, as real threads can:
//! a loop that counts its timeouts (`n += 1`) reaches any count before the
//! others move. What is held back is only a *stutter*: a repeat from the
//! state the thread last timed out from, which would only repeat itself.
//! The driver hands each timed wait a fingerprint of the thread's frames
//! ([`Turns::note_wait_state`]); a repeat is a stutter when that fingerprint
//! equals the one of its last timeout and, since then, the thread wrote
//! nothing shared, started or joined no thread, read no clock
//! ([`Turns::note_clock_read`]) and took as many locks as it gave back. A
//! stutter may time out again only once another thread changed shared state
//! (or when nothing else can run at all), so a polling loop that only
//! re-checks (`while not ev.wait(0.1): pass`) neither spins nor is cut.
//!
//! Each thread may choose at most [`MAX_TIMEOUTS`] timeouts that are not
//! stutters per execution: two pollers that change state can trade timeouts
//! forever, and a counting loop has no bound. Beyond it, a timeout happens
//! only when nothing else can run, and a decision that left one out is
//! recorded ([`Turns::timeouts_cut`]): the search did not cover every
//! outcome, and a pass proves nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::coop::{Blocked, CoopOp};
use crate::event::{AccessKind, Event, ThreadId};
use crate::strategy::{Choice, Strategy, ThreadStatus};
use crate::waitfor::WaitForGraph;

/// How many timeouts that are not stutters one thread may choose in one
/// execution (see the module doc).
pub const MAX_TIMEOUTS: usize = 8;

/// A source position captured when a cooperative operation was called.
#[derive(Clone, Debug)]
pub struct Loc {
    pub file: String,
    pub line: u32,
    pub function: String,
    /// The frames inside libraries below this one (`file:line function`,
    /// outermost first), when the explanation asks for all frames.
    pub via: Option<String>,
}

/// One executed event, kept for the explanation.
pub struct TraceStep {
    pub tid: ThreadId,
    pub event: Event,
    /// Set for cooperative operations; tracer events carry a site instead.
    pub loc: Option<Loc>,
    /// Human text for cooperative operations ("acquire Lock#3").
    pub what: Option<String>,
}

enum ThreadSlot {
    /// Spawn announced, not yet executed: never enabled.
    Unborn,
    Pending {
        event: Event,
        op: Option<Box<dyn CoopOp>>,
        loc: Option<Loc>,
        what: Option<String>,
        /// The virtual clock when the thread got here (a timeout ends
        /// `timeout` after it).
        since: f64,
    },
    Running,
    Finished,
}

struct Thread {
    slot: ThreadSlot,
    /// Result of the last applied operation (1/0 for acquire…).
    result: i64,
    name: String,
    /// Where the thread last stopped (for deadlock and timeout reports).
    last_loc: Option<Loc>,
    /// The tracer site of its last event, when newer than `last_loc`.
    last_site: u64,
    /// Timeouts it chose in this execution that were not stutters (nor
    /// forced by a deadlock): what [`MAX_TIMEOUTS`] bounds.
    timeouts: usize,
    /// Fingerprint of the thread's frames at the timed wait it is pending
    /// at (`None`: unknown, never a stutter).
    wait_state: Option<u64>,
    /// The thread's state when it last timed out: frames fingerprint,
    /// `changes` and `lock_balance` then.
    timeout_state: Option<(Option<u64>, u64, i64)>,
    /// Of [`Turns::shared_changes`], those this thread made.
    own_shared: u64,
    /// The others' shared changes when it last timed out.
    shared_mark: u64,
    /// Shared writes, spawns, joins and clock reads it made so far.
    changes: u64,
    /// Locks it acquired minus locks it released so far.
    lock_balance: i64,
    /// The thread was told of the abort: it is unwinding, and its cleanup
    /// code runs unscheduled (see [`Turns::point`]).
    unwinding: bool,
}

/// Why an execution was stopped from outside its threads' code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    Deadlock(String),
    Timeout(String),
    /// A strategy broke its contract: a bug in frontrun, not in user code.
    Internal(String),
    /// DPOR: every continuation repeats an explored trace; not a verdict.
    Pruned,
}

/// One thread of a deadlock report.
#[derive(Clone, Debug)]
pub struct BlockedThread {
    pub tid: ThreadId,
    pub waits_for: Blocked,
}

/// What a decision led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This thread now holds the turn (its operation was applied).
    Run(ThreadId),
    /// Every thread finished.
    Done,
    /// The execution stopped ([`Turns::aborted`] says why).
    Stop,
}

/// What a thread reaching a scheduling point does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointOutcome {
    /// Run on at once; the value is its operation's result.
    Continue(i64),
    /// Another thread holds the turn: park until it comes back
    /// ([`Turns::turn_result`]). `wake_all`: the run ended, wake everyone.
    Park { wake_all: bool },
    /// Unwind the thread with this abort. `wake_all`: the run stopped just
    /// now, wake everyone.
    Raise { abort: Abort, wake_all: bool },
}

/// The scheduling state of one execution. The strategy is the caller's,
/// lent to each call that decides (none: every thread counts as finished).
pub struct Turns {
    threads: Vec<Thread>,
    turn: Option<ThreadId>,
    abort: Option<Abort>,
    trace: Vec<TraceStep>,
    /// Scheduling decisions taken by the core itself (timed waits firing).
    forced: Vec<ThreadId>,
    /// Steps run so far, readable by pending operations (`SleepOp`).
    steps: Arc<AtomicUsize>,
    /// Per-thread "has returned", rebuilt at each decision; kept to reuse
    /// its allocation (a scheduling point should allocate nothing).
    finished: Vec<bool>,
    /// Always empty between decisions; kept for its allocation.
    statuses: Vec<ThreadStatus<'static>>,
    /// Virtual seconds since the execution started (see the module doc).
    vclock: f64,
    /// A timeout was left out of a decision by [`MAX_TIMEOUTS`].
    timeouts_cut: bool,
    /// Events run so far that changed shared state (a write, a lock taken
    /// or given back, a thread started or joined): a stutter may repeat
    /// once this moved.
    shared_changes: u64,
}

impl Turns {
    pub fn new() -> Self {
        Turns {
            threads: Vec::new(),
            turn: None,
            abort: None,
            trace: Vec::new(),
            forced: Vec::new(),
            steps: Arc::new(AtomicUsize::new(0)),
            finished: Vec::new(),
            statuses: Vec::new(),
            vclock: 0.0,
            timeouts_cut: false,
            shared_changes: 0,
        }
    }

    /// Add a thread: `started`, it waits at a pure yield point before its
    /// first instruction; else it is born when a `Spawn` of it runs.
    pub fn add_thread(&mut self, name: String, started: bool) -> ThreadId {
        let tid = self.threads.len();
        self.threads.push(Thread {
            slot: if started {
                start_slot()
            } else {
                ThreadSlot::Unborn
            },
            result: 0,
            name,
            last_loc: None,
            last_site: 0,
            own_shared: 0,
            shared_mark: 0,
            timeouts: 0,
            wait_state: None,
            timeout_state: None,
            changes: 0,
            lock_balance: 0,
            unwinding: false,
        });
        tid
    }

    /// The fingerprint of thread `tid`'s frames at the timed wait it is
    /// about to record with [`Turns::point`] (`None`: not known). See the
    /// module doc.
    pub fn note_wait_state(&mut self, tid: ThreadId, state: Option<u64>) {
        if let Some(t) = self.threads.get_mut(tid) {
            t.wait_state = state;
        }
    }

    /// Thread `tid` read the virtual clock: what it does next may depend on
    /// the time, so its next timeout is no stutter.
    pub fn note_clock_read(&mut self, tid: ThreadId) {
        if let Some(t) = self.threads.get_mut(tid) {
            t.changes += 1;
        }
    }

    /// The step counter, and its value now.
    pub fn steps(&self) -> (Arc<AtomicUsize>, usize) {
        (self.steps.clone(), self.steps.load(Ordering::Relaxed))
    }

    /// The execution's virtual clock, in seconds since it started.
    pub fn vnow(&self) -> f64 {
        self.vclock
    }

    /// The thread holding the turn.
    pub fn turn(&self) -> Option<ThreadId> {
        self.turn
    }

    /// A scheduling point of thread `tid`, which must hold the turn: record
    /// its pending `event` (enabled while `op` says so) and decide.
    pub fn point(
        &mut self,
        strategy: Option<&mut dyn Strategy>,
        tid: ThreadId,
        event: Event,
        op: Option<Box<dyn CoopOp>>,
        loc: Option<Loc>,
        what: Option<String>,
    ) -> PointOutcome {
        if let Some(a) = self.abort.clone() {
            return self.after_abort(tid, a, op);
        }
        if self.turn != Some(tid) {
            // Two threads running at once would make the trace a lie: stop
            // the execution as frontrun's own error rather than record it.
            let a = Abort::Internal(format!(
                "thread '{}' reached a scheduling point without holding the turn (held by {:?})",
                self.threads[tid].name, self.turn
            ));
            self.abort = Some(a.clone());
            return PointOutcome::Raise {
                abort: a,
                wake_all: true,
            };
        }
        let t = &mut self.threads[tid];
        if loc.is_some() {
            t.last_loc.clone_from(&loc);
            t.last_site = 0;
        } else {
            t.last_site = event.site;
        }
        t.slot = ThreadSlot::Pending {
            event,
            op,
            loc,
            what,
            since: self.vclock,
        };
        match self.decide(strategy) {
            Decision::Run(u) if u == tid => PointOutcome::Continue(self.threads[tid].result),
            Decision::Run(_) => PointOutcome::Park { wake_all: false },
            Decision::Done => PointOutcome::Park { wake_all: true },
            Decision::Stop => {
                self.threads[tid].unwinding = true;
                PointOutcome::Raise {
                    abort: self.abort.clone().expect("stop sets abort"),
                    wake_all: true,
                }
            }
        }
    }

    /// A scheduling point reached once the execution was stopped.
    ///
    /// The first one raises the abort to unwind the thread. The ones after
    /// run the thread's own cleanup (`finally`, `__exit__`: a rollback, a
    /// lock release) unscheduled, so that no state is left behind for the
    /// next execution or the teardown: an operation that can proceed (a
    /// release, a free lock) is applied at once, one that would wait raises
    /// again.
    fn after_abort(
        &mut self,
        tid: ThreadId,
        a: Abort,
        op: Option<Box<dyn CoopOp>>,
    ) -> PointOutcome {
        let raise = PointOutcome::Raise {
            abort: a,
            wake_all: false,
        };
        if !self.threads[tid].unwinding {
            self.threads[tid].unwinding = true;
            return raise;
        }
        let Some(mut op) = op else {
            return PointOutcome::Continue(0);
        };
        let finished: Vec<bool> = self
            .threads
            .iter()
            .map(|t| matches!(t.slot, ThreadSlot::Finished))
            .collect();
        if op.enabled(tid, &finished) {
            PointOutcome::Continue(op.apply(tid, false))
        } else {
            raise
        }
    }

    /// For a parked thread `tid`: `Some(Ok(result))` once it holds the
    /// turn, `Some(Err(abort))` once the run stopped (it then unwinds),
    /// `None` while it must keep waiting.
    pub fn turn_result(&mut self, tid: ThreadId) -> Option<Result<i64, Abort>> {
        if let Some(a) = self.abort.clone() {
            self.threads[tid].unwinding = true;
            return Some(Err(a));
        }
        (self.turn == Some(tid)).then(|| Ok(self.threads[tid].result))
    }

    /// Parked thread `tid` waited past the run's deadline: stop the run.
    pub fn time_out(&mut self, tid: ThreadId, limit: &str) -> Abort {
        let a = Abort::Timeout(format!(
            "thread '{}' waited for its turn longer than timeout_per_run ({limit})",
            self.threads[tid].name
        ));
        self.abort = Some(a.clone());
        self.threads[tid].unwinding = true;
        a
    }

    /// Thread `tid` returned: pass the turn on. `true` when the run stopped
    /// (wake everyone).
    pub fn finish(&mut self, strategy: Option<&mut dyn Strategy>, tid: ThreadId) -> bool {
        self.threads[tid].slot = ThreadSlot::Finished;
        self.abort.is_none() && self.turn == Some(tid) && self.decide(strategy) == Decision::Stop
    }

    /// Stop the execution (the first reason wins).
    pub fn abort(&mut self, why: Abort) {
        if self.abort.is_none() {
            self.abort = Some(why);
        }
    }

    pub fn aborted(&self) -> Option<Abort> {
        self.abort.clone()
    }

    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    pub fn name(&self, tid: ThreadId) -> &str {
        &self.threads[tid].name
    }

    pub fn thread_names(&self) -> Vec<String> {
        self.threads.iter().map(|t| t.name.clone()).collect()
    }

    pub fn is_finished(&self, tid: ThreadId) -> bool {
        self.threads
            .get(tid)
            .is_some_and(|t| matches!(t.slot, ThreadSlot::Finished))
    }

    /// Where each thread last stopped: `(name, location, tracer site)`,
    /// `None` for finished threads.
    pub fn position(&self, tid: ThreadId) -> Option<(&str, Option<&Loc>, u64)> {
        let t = self.threads.get(tid)?;
        (!matches!(t.slot, ThreadSlot::Finished)).then_some((
            t.name.as_str(),
            t.last_loc.as_ref(),
            t.last_site,
        ))
    }

    /// The executed steps, in order.
    pub fn take_trace(&mut self) -> Vec<TraceStep> {
        std::mem::take(&mut self.trace)
    }

    pub fn forced(&self) -> &[ThreadId] {
        &self.forced
    }

    /// Whether a decision of this execution left out a timeout because the
    /// thread had used up its [`MAX_TIMEOUTS`]: outcomes were not explored.
    pub fn timeouts_cut(&self) -> bool {
        self.timeouts_cut
    }

    /// Ask the strategy and run its choice; on deadlock, fire a timed wait if
    /// one exists, else record the deadlock and stop.
    pub fn decide(&mut self, strategy: Option<&mut dyn Strategy>) -> Decision {
        let mut cut = false;
        let choice = {
            let Turns {
                threads,
                finished,
                statuses: spare,
                shared_changes,
                ..
            } = &mut *self;
            let steps = *shared_changes;
            finished.clear();
            finished.extend(
                threads
                    .iter()
                    .map(|t| matches!(t.slot, ThreadSlot::Finished)),
            );
            let mut statuses = recycle(std::mem::take(spare));
            statuses.extend(threads.iter().enumerate().map(|(i, t)| {
                match &t.slot {
                    ThreadSlot::Pending { event, op, .. } => {
                        if op
                            .as_ref()
                            .is_none_or(|o| o.enabled(i, finished) || may_time_out(t, &**o, steps))
                        {
                            ThreadStatus::Enabled(event)
                        } else {
                            cut |= op.as_ref().is_some_and(|o| over_budget(t, &**o, steps));
                            ThreadStatus::Disabled(event)
                        }
                    }
                    ThreadSlot::Unborn => ThreadStatus::Disabled(&UNBORN),
                    // A running thread cannot be asked about; it is the caller.
                    ThreadSlot::Running | ThreadSlot::Finished => ThreadStatus::Finished,
                }
            }));
            let choice = match strategy {
                Some(s) => s.choose(&statuses),
                None => Choice::AllFinished,
            };
            *spare = recycle(statuses);
            choice
        };
        // A deadlock fires a timed wait anyway: nothing was left out then.
        if cut && choice != Choice::Deadlock {
            self.timeouts_cut = true;
        }
        match choice {
            Choice::Run(u) if u < self.threads.len() && self.is_enabled(u) => {
                self.run(u, false);
                Decision::Run(u)
            }
            Choice::Run(u) => {
                self.abort = Some(Abort::Internal(format!(
                    "the strategy chose thread {u}, which cannot run"
                )));
                Decision::Stop
            }
            Choice::AllFinished => {
                self.turn = None;
                Decision::Done
            }
            Choice::SleepBlocked => {
                self.abort = Some(Abort::Pruned);
                self.turn = None;
                Decision::Stop
            }
            Choice::Deadlock => {
                let timed = self.threads.iter().position(|t| match &t.slot {
                    ThreadSlot::Pending { op: Some(op), .. } => op.timed(),
                    _ => false,
                });
                if let Some(u) = timed {
                    self.forced.push(u);
                    self.run(u, true);
                    return Decision::Run(u);
                }
                self.abort = Some(Abort::Deadlock(self.deadlock_report()));
                self.turn = None;
                Decision::Stop
            }
        }
    }

    /// Whether `u` may run, by the `finished` flags of the current decision.
    fn is_enabled(&self, u: ThreadId) -> bool {
        let steps = self.shared_changes;
        let t = &self.threads[u];
        match &t.slot {
            ThreadSlot::Pending { op, .. } => op
                .as_ref()
                .is_none_or(|o| o.enabled(u, &self.finished) || may_time_out(t, &**o, steps)),
            _ => false,
        }
    }

    fn run(&mut self, u: ThreadId, timed_out: bool) {
        let slot = std::mem::replace(&mut self.threads[u].slot, ThreadSlot::Running);
        if let ThreadSlot::Pending {
            event,
            op,
            loc,
            what,
            since,
        } = slot
        {
            // Counted before a timeout's snapshot below, so that two
            // snapshots differ only by what ran between the two waits.
            let t = &mut self.threads[u];
            let wait_state = t.wait_state.take();
            // A lock's own state write is what `lock_balance` follows.
            let lock_op = event
                .accesses
                .iter()
                .any(|a| matches!(a.kind, AccessKind::Acquire | AccessKind::Release));
            for a in &event.accesses {
                match a.kind {
                    AccessKind::Read => {}
                    AccessKind::Write if lock_op => {}
                    AccessKind::Write | AccessKind::Spawn | AccessKind::Join => t.changes += 1,
                    AccessKind::Acquire => t.lock_balance += 1,
                    AccessKind::Release => t.lock_balance -= 1,
                }
            }
            if event.accesses.iter().any(|a| a.kind != AccessKind::Read) {
                self.shared_changes += 1;
                self.threads[u].own_shared += 1;
            }
            let shared_changes = self.shared_changes;
            if let Some(mut op) = op {
                // Chosen while it could not complete: it timed out.
                let forced = timed_out;
                let timed_out = timed_out || !op.enabled(u, &self.finished);
                let t = &mut self.threads[u];
                if timed_out {
                    let state = (wait_state, t.changes, t.lock_balance);
                    let stutter = wait_state.is_some() && t.timeout_state == Some(state);
                    t.timeout_state = Some(state);
                    t.shared_mark = shared_changes - t.own_shared;
                    if !forced && !stutter {
                        t.timeouts += 1;
                    }
                }
                t.result = op.apply(u, timed_out);
                if let Some(d) = op.elapsed(timed_out) {
                    self.vclock = self.vclock.max(since + d);
                }
            }
            for a in &event.accesses {
                if a.kind == AccessKind::Spawn {
                    if let Some(child) = self.threads.get_mut(a.obj as usize) {
                        if matches!(child.slot, ThreadSlot::Unborn) {
                            child.slot = start_slot();
                        }
                    }
                }
            }
            self.trace.push(TraceStep {
                tid: u,
                event,
                loc,
                what,
            });
        }
        self.turn = Some(u);
        self.steps.fetch_add(1, Ordering::Relaxed);
    }

    /// The wait-for cycle (or the blocked threads if there is none), with
    /// the file:line where each thread is parked.
    fn deadlock_report(&self) -> String {
        let blocked: Vec<BlockedThread> = self
            .threads
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.slot {
                ThreadSlot::Pending { op: Some(op), .. } => Some(BlockedThread {
                    tid: i,
                    waits_for: op.blocked_on(),
                }),
                _ => None,
            })
            .collect();
        // Each blocked thread waits for a resource of its own, held by the
        // owner of what it waits for (a lock's holder, a joined thread).
        let mut graph = WaitForGraph::new();
        for b in &blocked {
            if let Some(owner) = b.waits_for.owner() {
                let resource = (1u64 << 63) | b.tid as u64;
                graph.hold(owner, resource);
                graph.wait(b.tid, resource);
            }
        }
        let cycle: Option<Vec<ThreadId>> = graph
            .find_cycle()
            .map(|edges| edges.iter().map(|e| e.thread).collect());
        let names = self.thread_names();
        let describe = |b: &BlockedThread| {
            let t = &self.threads[b.tid];
            let at = t.last_loc.as_ref().map_or_else(
                || "?".to_string(),
                |l| format!("{}:{} in {}", l.file, l.line, l.function),
            );
            format!(
                "  thread '{}' at {at}: {}",
                t.name,
                b.waits_for.describe(&names)
            )
        };
        let mut out = String::new();
        match cycle {
            Some(c) => {
                out.push_str("deadlock: wait-for cycle ");
                let chain: Vec<String> = c
                    .iter()
                    .chain(c.first())
                    .map(|&i| format!("'{}'", self.threads[i].name))
                    .collect();
                out.push_str(&chain.join(" -> "));
                out.push('\n');
                for &i in &c {
                    if let Some(b) = blocked.iter().find(|b| b.tid == i) {
                        out.push_str(&describe(b));
                        out.push('\n');
                    }
                }
            }
            None => {
                out.push_str("deadlock: every unfinished thread is blocked\n");
                for b in &blocked {
                    out.push_str(&describe(b));
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Default for Turns {
    fn default() -> Self {
        Self::new()
    }
}

fn start_slot() -> ThreadSlot {
    ThreadSlot::Pending {
        event: Event::default(),
        op: None,
        loc: None,
        what: None,
        since: 0.0,
    }
}

static UNBORN: Event = Event {
    accesses: Vec::new(),
    site: 0,
};

/// Whether `t`'s pending timed wait may end by timing out now (see the
/// module doc): a stutter once shared state changed since its last timeout,
/// anything else within [`MAX_TIMEOUTS`]. `changes` is
/// [`Turns::shared_changes`].
fn may_time_out(t: &Thread, op: &dyn CoopOp, changes: u64) -> bool {
    if op.timeout().is_none() {
        return false;
    }
    if stutters(t) {
        changes - t.own_shared != t.shared_mark
    } else {
        t.timeouts < MAX_TIMEOUTS
    }
}

/// Whether `t` could time out now but for its [`MAX_TIMEOUTS`].
fn over_budget(t: &Thread, op: &dyn CoopOp, _changes: u64) -> bool {
    op.timeout().is_some() && !stutters(t) && t.timeouts >= MAX_TIMEOUTS
}

/// Whether timing out again would bring `t` back to the state it last timed
/// out from, the others not having moved since.
fn stutters(t: &Thread) -> bool {
    t.wait_state.is_some() && t.timeout_state == Some((t.wait_state, t.changes, t.lock_balance))
}

/// The same (emptied) buffer, for borrows of another lifetime. Collecting a
/// vector's own `into_iter` reuses its allocation; the closure never runs
/// because the vector is empty.
fn recycle<'b>(mut v: Vec<ThreadStatus<'_>>) -> Vec<ThreadStatus<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("emptied above"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let e = Event::default();
        let mut v = Vec::with_capacity(8);
        v.push(ThreadStatus::Enabled(&e));
        let cap = v.capacity();
        let ptr = v.as_ptr() as usize;
        let back: Vec<ThreadStatus<'static>> = recycle(v);
        assert!(back.is_empty());
        assert_eq!((back.capacity(), back.as_ptr() as usize), (cap, ptr));
    }
}
