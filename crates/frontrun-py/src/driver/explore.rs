//! The exploration loop: run executions under a strategy until it is done,
//! a limit is hit or a failure is found, and report an honest verdict.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontrun_engine::event::{AccessKind, ThreadId};
use frontrun_engine::explain::{self, BugKind, TraceLine};
use frontrun_engine::strategy::dpor::{Dpor, DporConfig, PassBound};
use frontrun_engine::strategy::guided::{shrink_candidates, switch_points, Guided, SwitchCounts};
use frontrun_engine::strategy::portfolio::Sampler;
use frontrun_engine::strategy::{Outcome, Strategy};
use frontrun_engine::verdict::{self, SearchSummary};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::coro;
use super::ctx;
use super::divergence::divergence_text;
use super::gate::{consume_stop_request, Abort, Gate, TraceStep};
use super::options::{ExploreOptions, ExploreOutcome};
use super::pool::{Job, WorkerPool};
use super::progress::{self, Progress};
use super::stall::short_path;
use crate::tracer::{self, registry};
use frontrun_engine::strategy::build::{self as strategies, StrategyKind};

/// How one execution ended.
enum RunEnd {
    Passed,
    /// Cut by DPOR before completion: no verdict, not counted.
    Pruned,
    Failed {
        kind: &'static str,
        message: String,
    },
    TimedOut(String),
}

struct RunRecord {
    verdict: RunEnd,
    schedule: Vec<ThreadId>,
    trace: Vec<TraceStep>,
    names: Vec<String>,
    /// A construct with unexplored outcomes ran (`Gate::note_unexplored`).
    unexplored: Option<&'static str>,
}

/// Everything one execution needs, fixed for the exploration.
struct Program<'py> {
    pool: &'py Bound<'py, WorkerPool>,
    setup: &'py Bound<'py, PyAny>,
    threads: Vec<Bound<'py, PyAny>>,
    names: Vec<String>,
    invariant: &'py Bound<'py, PyAny>,
    teardown: Option<&'py Bound<'py, PyAny>>,
    run_timeout: Duration,
    /// Run explored threads as greenlets on this OS thread (see `coro`).
    coroutines: bool,
}

fn thread_names(threads: &[Bound<'_, PyAny>]) -> Vec<String> {
    let base: Vec<String> = threads
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.getattr("__name__")
                .and_then(|n| n.extract::<String>())
                .ok()
                .filter(|n| !n.starts_with('<'))
                .unwrap_or_else(|| format!("thread {i}"))
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, n)| {
            if base.iter().filter(|m| *m == n).count() > 1 {
                format!("{n}#{i}")
            } else {
                n.clone()
            }
        })
        .collect()
}

fn error_text(py: Python<'_>, err: &PyErr) -> String {
    let tb = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    format!(
        "{tb}{}",
        err.value(py).repr().map_or_else(
            |_| err.to_string(),
            |r| {
                let t = err.get_type(py);
                let name = t.name().map(|n| n.to_string()).unwrap_or_default();
                let msg = err
                    .value(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| r.to_string());
                format!("{name}: {msg}")
            }
        )
    )
}

impl Program<'_> {
    fn run(
        &self,
        py: Python<'_>,
        strategy: Box<dyn Strategy + Send>,
    ) -> PyResult<(RunRecord, Box<dyn Strategy + Send>)> {
        registry::begin_execution(py);
        let _clock = ctx::ControllerClock::start();
        ctx::set_in_setup(true);
        let state = super::real_locks::recording(py, || self.setup.call0());
        ctx::set_in_setup(false);
        let state = state?;
        registry::add_root(py, &state);
        let gate = Gate::new(strategy, self.run_timeout);
        ctx::controller_gate(&gate);
        let args = PyTuple::new(py, [&state])?.unbind();
        let hub = if self.coroutines {
            let hub = Arc::new(coro::Hub::new(py)?);
            gate.use_hub(hub.clone());
            Some(hub)
        } else {
            // Nothing may fail between reserving workers and submitting to
            // them: an unused reservation would keep idle workers from
            // leaving.
            WorkerPool::ensure(self.pool, self.threads.len())?;
            None
        };
        for (f, name) in self.threads.iter().zip(&self.names) {
            let tid = gate.add_thread(name.clone(), true);
            let job = Job {
                gate: gate.clone(),
                tid,
                func: f.clone().unbind(),
                args: args.clone_ref(py),
                name: name.clone(),
                thread: None,
            };
            match &hub {
                Some(hub) => hub.submit(job),
                None => self.pool.get().submit(job),
            }
        }
        gate.kick();
        // `teardown` runs after every execution that had a `setup`, whatever
        // its end (deadlock, timeout, an invariant that raised): user
        // resources must not leak on the executions that matter most.
        let verdict = match &hub {
            Some(hub) => self.finish_switching(py, &gate, hub, &state),
            None => self.finish(py, &gate, &state),
        };
        let verdict = self.tear_down(py, &state, verdict)?;
        let mut strategy = gate
            .take_strategy()
            .expect("the gate hands the strategy back");
        let schedule = strategy.schedule().to_vec();
        strategy.end_execution(match verdict {
            RunEnd::Passed | RunEnd::Pruned => Outcome::Passed,
            RunEnd::Failed { .. } => Outcome::Failed,
            RunEnd::TimedOut(_) => Outcome::Aborted,
        });
        let exec = RunRecord {
            verdict,
            schedule,
            trace: gate.take_trace(),
            names: gate.thread_names(),
            // Both read, so that the tracer's flag is cleared each time.
            unexplored: gate
                .unexplored()
                .or(tracer::opaque::take_untraced().then_some(tracer::opaque::UNTRACED_WHAT)),
        };
        registry::end_execution(py);
        Ok((exec, strategy))
    }

    /// Coroutine substrate: run the threads' greenlets on this OS thread
    /// (traced for as long as they run), then judge the execution.
    fn finish_switching(
        &self,
        py: Python<'_>,
        gate: &Arc<Gate>,
        hub: &coro::Hub,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<RunEnd> {
        tracer::install(py)?;
        let watchdog = coro::Watchdog::arm(gate, Duration::from_millis(200));
        let ran = hub.run_all(py, gate);
        if watchdog.disarm() {
            // Its stop request may not have been taken (the greenlet ended
            // first): none may stay pending on this thread.
            consume_stop_request(py);
        }
        tracer::uninstall(py);
        ran?;
        self.judge(py, gate, state)
    }

    /// Wait for the threads, then judge the execution.
    fn finish(
        &self,
        py: Python<'_>,
        gate: &Arc<Gate>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<RunEnd> {
        // Parked threads time out on their own at the deadline; the margin
        // lets them report before we give up on a thread that never parks.
        let margin = Duration::from_millis(200);
        let end = gate.deadline() + margin;
        let finished = loop {
            // In slices, to notice at once a turn holder blocked on a real
            // lock that a parked thread holds (it would sit until the deadline).
            let slice = end.min(Instant::now() + STALL_CHECK);
            match gate.wait_jobs(py, slice) {
                Ok(true) => break Ok(true),
                Ok(false) if Instant::now() >= end => break Ok(false),
                Ok(false) => {
                    if let Some(msg) = real_lock_stall(py, gate) {
                        return Ok(RunEnd::TimedOut(self.stop_stuck(py, gate, msg)?));
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let finished = match finished {
            Ok(f) => f,
            Err(interrupt) => {
                // Ctrl-C: stop the threads, give them a moment, and let the
                // interruption through (teardown still runs).
                gate.abort(Abort::Timeout("the exploration was interrupted".into()));
                gate.interrupt_running(py);
                let _ = gate.wait_jobs(py, Instant::now() + margin);
                gate.withdraw_stop_requests(py);
                return Err(interrupt);
            }
        };
        if !finished {
            let msg = format!(
                "an execution did not finish within timeout_per_run ({:?}); a thread is \
                 stuck outside frontrun's control (a real lock or other primitive created \
                 outside setup, blocking I/O, an endless loop)\n{}",
                self.run_timeout,
                // Where they were when a parked thread's wait timed out, if
                // one did: unwinding it may have released what the stuck
                // thread waits for.
                gate.stall_positions_within(py, Duration::from_secs(1))
                    .map_or_else(|| gate.where_threads_are(py), str::to_owned)
            );
            Ok(RunEnd::TimedOut(self.stop_stuck(py, gate, msg)?))
        } else {
            self.judge(py, gate, state)
        }
    }

    /// Stop the threads of a timed-out execution: a thread still running
    /// Python code gets an asynchronous `ExplorationAborted` and unwinds; a
    /// thread blocked in C cannot be stopped, and the message says so.
    fn stop_stuck(&self, py: Python<'_>, gate: &Arc<Gate>, msg: String) -> PyResult<String> {
        gate.abort(Abort::Timeout(msg.clone()));
        gate.interrupt_running(py);
        let stopped = gate.wait_jobs(py, Instant::now() + Duration::from_millis(500));
        gate.withdraw_stop_requests(py);
        if stopped? {
            return Ok(msg);
        }
        let stuck: Vec<String> = gate
            .running()
            .into_iter()
            .map(|(name, _)| format!("'{name}'"))
            .collect();
        Ok(format!(
            "{msg}\n{} thread(s) could not be stopped ({}): blocked in C code, which an \
             asynchronous exception cannot interrupt; their worker is abandoned, and \
             frontrun.shutdown() reports it",
            gate.live_jobs(),
            stuck.join(", ")
        ))
    }

    /// Judge an execution whose threads all returned.
    fn judge(
        &self,
        py: Python<'_>,
        gate: &Arc<Gate>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<RunEnd> {
        match gate.aborted() {
            Some(Abort::Deadlock(m)) => {
                return Ok(RunEnd::Failed {
                    kind: "deadlock",
                    message: m,
                })
            }
            Some(Abort::Timeout(m)) => {
                return Ok(RunEnd::TimedOut(match gate.stall_positions() {
                    Some(at) if !at.is_empty() => format!("{m}\n{at}"),
                    _ => m,
                }))
            }
            Some(Abort::Internal(m)) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "frontrun internal error: {m}; please report it with the test that triggered it"
                )))
            }
            Some(Abort::Pruned) => return Ok(RunEnd::Pruned),
            None => {}
        }
        let errors = gate.take_errors(py);
        if !errors.is_empty() {
            return Ok(RunEnd::Failed {
                kind: "exception",
                message: raised_text(py, &errors),
            });
        }
        Ok(match self.invariant.call1((state,)) {
            Ok(v) => match v.is_truthy() {
                Ok(true) => RunEnd::Passed,
                Ok(false) => RunEnd::Failed {
                    kind: "invariant",
                    message: format!(
                        "the invariant returned {} after all threads finished",
                        repr_or_type(&v)
                    ),
                },
                Err(e) if !is_exception(py, &e) => return Err(e),
                // A numpy array, say: not a verdict, but never let it escape.
                Err(e) => RunEnd::Failed {
                    kind: "invariant",
                    message: format!(
                        "the invariant returned {}, which has no truth value; return a bool:\n{}",
                        repr_or_type(&v),
                        error_text(py, &e)
                    ),
                },
            },
            // KeyboardInterrupt, SystemExit, test-runner timeouts: not a
            // verdict about the code under test.
            Err(e) if !is_exception(py, &e) => return Err(e),
            Err(e) => RunEnd::Failed {
                kind: "invariant",
                message: format!("the invariant raised:\n{}", error_text(py, &e)),
            },
        })
    }

    /// `exec` failed with its threads run one after another: run them one
    /// after another in the reverse order, to tell a failure that needs no
    /// interleaving at all from an order dependence.
    fn serial_in_reverse(&self, py: Python<'_>, exec: &RunRecord, seed: u64) -> PyResult<Serial> {
        let distinct: std::collections::HashSet<_> = exec.schedule.iter().collect();
        if distinct.len() <= 1 {
            return Ok(Serial::FailsInEveryOrder);
        }
        // The pruning DPOR with bound 0 and the highest thread first runs
        // the threads one after another in reverse order on its first
        // execution (the sound bounded search follows no search order).
        let order =
            strategies::search_order("highest-first", seed).map_err(PyValueError::new_err)?;
        let mut reverse: Box<dyn Strategy + Send> = Box::new(Dpor::new(
            DporConfig::default()
                .with_preemption_bound(0)
                .with_search_order(order),
        ));
        if !reverse.begin_execution() {
            return Ok(Serial::No);
        }
        let (again, _) = self.run(py, reverse)?;
        Ok(match again.verdict {
            RunEnd::Failed { .. } => Serial::FailsInEveryOrder,
            RunEnd::Passed => Serial::FailsInThisOrder,
            // Cut short: nothing learnt.
            RunEnd::Pruned | RunEnd::TimedOut(_) => Serial::No,
        })
    }

    /// Call `teardown` after an execution that ended with `verdict`. A
    /// teardown that raises is a failure of its own ("teardown"), except
    /// that a failure found before it is kept, with the teardown's error
    /// added to its message.
    fn tear_down(
        &self,
        py: Python<'_>,
        state: &Bound<'_, PyAny>,
        verdict: PyResult<RunEnd>,
    ) -> PyResult<RunEnd> {
        let Some(t) = self.teardown else {
            return verdict;
        };
        let outcome = t.call1((state,)).map(drop);
        let err = match (verdict, outcome) {
            (v, Ok(())) => return v,
            // The first interruption wins; the teardown's error is secondary.
            (Err(e), _) => return Err(e),
            (Ok(_), Err(e)) if !is_exception(py, &e) => return Err(e),
            (Ok(v), Err(e)) => (v, format!("teardown raised:\n{}", error_text(py, &e))),
        };
        Ok(match err {
            (RunEnd::Failed { kind, message }, extra) => RunEnd::Failed {
                kind,
                message: format!("{message}\nThen {extra}"),
            },
            (RunEnd::TimedOut(m), extra) => RunEnd::TimedOut(format!("{m}\nThen {extra}")),
            (RunEnd::Passed | RunEnd::Pruned, extra) => RunEnd::Failed {
                kind: "teardown",
                message: extra,
            },
        })
    }
}

/// How often `finish` checks for a turn holder blocked on a real lock.
const STALL_CHECK: Duration = Duration::from_millis(250);

/// The message for a turn holder blocked on a real (not cooperative) lock
/// held by another explored thread, if that is what stalls the execution.
fn real_lock_stall(py: Python<'_>, gate: &Gate) -> Option<String> {
    let (name, ident) = gate.turn_holder()?;
    let others: HashMap<String, u64> = gate
        .running()
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect();
    let found = py
        .import("frontrun._stall")
        .and_then(|m| m.call_method1("real_lock_wait", (ident, others)))
        .and_then(|r| r.extract::<Option<String>>());
    match found {
        Ok(Some(what)) => Some(format!(
            "an execution stalled: thread '{name}' is {what}\n{}",
            gate.where_threads_are(py)
        )),
        Ok(None) => None,
        Err(e) => {
            e.write_unraisable(py, None);
            None
        }
    }
}

fn is_exception(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<pyo3::exceptions::PyException>(py)
}

/// `repr(v)`, or its type when `repr` itself fails.
fn repr_or_type(v: &Bound<'_, PyAny>) -> String {
    v.repr().map(|r| r.to_string()).unwrap_or_else(|_| {
        let t = v
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        format!("a {t} object")
    })
}

/// Every thread's exception, in thread order: two threads that raise are
/// two findings, and the second is often the one that explains the first.
fn raised_text(py: Python<'_>, errors: &[(String, PyErr)]) -> String {
    let each: Vec<String> = errors
        .iter()
        .map(|(name, err)| format!("thread '{name}' raised:\n{}", error_text(py, err)))
        .collect();
    if each.len() == 1 {
        return each.into_iter().next().unwrap_or_default();
    }
    format!("{} threads raised:\n{}", each.len(), each.join("\n"))
}

/// Whether failures are shrunk: never when replaying a user's token.
enum SearchKind {
    Search,
    Replay,
}

/// A failing execution shrunk to fewer preemptions, then fewer context
/// switches, with what it cost.
struct Shrunk {
    exec: RunRecord,
    kind: &'static str,
    message: String,
    counts: Option<SwitchCounts>,
    replays: u32,
}

impl Program<'_> {
    /// Replay `plan` (then never preempt) and count its switches.
    fn guided(
        &self,
        py: Python<'_>,
        plan: Vec<ThreadId>,
    ) -> PyResult<(RunRecord, Option<SwitchCounts>)> {
        let (exec, s) = self.run(py, Box::new(Guided::new(plan)))?;
        Ok((exec, s.switch_counts()))
    }

    /// Shrink a failure greedily (see [`shrink_candidates`]): a candidate
    /// replaces the current one only if it fails the same way under replay
    /// with fewer (preemptions, context switches); at most `budget` replays.
    /// The failure is never lost: if even its own replay does not fail the
    /// same way, it is reported as found, unmeasured.
    fn shrink(
        &self,
        py: Python<'_>,
        exec: RunRecord,
        kind: &'static str,
        message: String,
        budget: u32,
    ) -> PyResult<Shrunk> {
        let original = Shrunk {
            exec,
            kind,
            message,
            counts: None,
            replays: 0,
        };
        if budget == 0 {
            return Ok(original);
        }
        let fails_same = |e: &RunRecord| match &e.verdict {
            RunEnd::Failed { kind: k, message } if *k == kind => Some(message.clone()),
            _ => None,
        };
        let (first, counts) = self.guided(py, original.exec.schedule.clone())?;
        let (Some(message), Some(counts)) = (fails_same(&first), counts) else {
            return Ok(Shrunk {
                replays: 1,
                ..original
            });
        };
        let mut best = Shrunk {
            exec: first,
            kind,
            message,
            counts: Some(counts),
            replays: 1,
        };
        // Most switches of a found schedule are incidental: find, by
        // bisection, a short prefix that still fails when the run then never
        // preempts (failing is close to monotone in the prefix length).
        let points = switch_points(&best.exec.schedule);
        let (mut lo, mut hi) = (0, points.len());
        let schedule = best.exec.schedule.clone();
        while lo < hi && best.replays < budget {
            let mid = (lo + hi) / 2;
            let (exec, counts) = self.guided(py, schedule[..points[mid]].to_vec())?;
            best.replays += 1;
            match (fails_same(&exec), counts) {
                (Some(m), Some(c)) if Some(c) <= best.counts => {
                    best.exec = exec;
                    best.message = m;
                    best.counts = Some(c);
                    hi = mid;
                }
                _ => lo = mid + 1,
            }
        }
        'improve: while best.replays < budget {
            for plan in shrink_candidates(&best.exec.schedule) {
                if best.replays >= budget {
                    break 'improve;
                }
                let (exec, counts) = self.guided(py, plan)?;
                best.replays += 1;
                if let (Some(m), Some(c)) = (fails_same(&exec), counts) {
                    if Some(c) < best.counts {
                        best.exec = exec;
                        best.message = m;
                        best.counts = Some(c);
                        continue 'improve;
                    }
                }
            }
            break;
        }
        Ok(best)
    }
}

/// The trace of an execution as the explainer wants it.
fn trace_lines(py: Python<'_>, exec: &RunRecord) -> PyResult<Vec<TraceLine>> {
    let linecache = py.import("linecache")?;
    let mut out = Vec::with_capacity(exec.trace.len());
    // A long trace repeats a few sites and lines: look each up once, so the
    // explanation stays linear in the trace with a small constant.
    let mut sites: HashMap<u64, Option<(String, u32)>> = HashMap::new();
    let mut sources: HashMap<(String, u32), String> = HashMap::new();
    for step in &exec.trace {
        if step.event.accesses.is_empty() && step.what.is_none() {
            continue;
        }
        let (file, line) = match &step.loc {
            Some(l) => (Some(l.file.clone()), l.line),
            None => match sites.entry(step.event.site).or_insert_with(|| {
                tracer::site_location(py, step.event.site).map(|s| (s.file, s.line))
            }) {
                Some((f, l)) => (Some(f.clone()), *l),
                None => (None, 0),
            },
        };
        let source = match &file {
            Some(f) => Some(match sources.get(&(f.clone(), line)) {
                Some(s) => s.clone(),
                None => {
                    let s = linecache
                        .call_method1("getline", (f, line))?
                        .extract::<String>()?
                        .trim()
                        .to_string();
                    sources.insert((f.clone(), line), s.clone());
                    s
                }
            }),
            None => None,
        };
        // Database statements render as `Txn A | SQL → values` (db/sites.rs).
        let mut description = match (crate::db::sites::describe(step.event.site), &step.what) {
            (Some(sql), _) => sql,
            (None, Some(w)) => w.clone(),
            (None, None) => step
                .event
                .accesses
                .iter()
                .map(tracer::describe_access)
                .collect::<Vec<_>>()
                .join(", "),
        };
        if let Some(via) = step.loc.as_ref().and_then(|l| l.via.as_ref()) {
            description = format!("{description} <- via {via}");
        }
        out.push(TraceLine {
            tid: step.tid,
            thread: exec
                .names
                .get(step.tid)
                .cloned()
                .unwrap_or_else(|| format!("thread {}", step.tid)),
            // A primitive's internal state is not data the user's code
            // shares: only lock order shows for those steps.
            accesses: step
                .event
                .accesses
                .iter()
                .filter(|a| {
                    step.what.is_none() || !matches!(a.kind, AccessKind::Read | AccessKind::Write)
                })
                .copied()
                .collect(),
            description,
            location: file.map(|f| format!("{}:{line}", short_path(&f))),
            source,
            subject: crate::db::sites::subject(step.event.site),
        });
    }
    Ok(out)
}

/// The first step at which `actual` differs from `wanted` (a replay that
/// could not follow its token).
fn first_difference(wanted: &[ThreadId], actual: &[ThreadId]) -> Option<usize> {
    let common = wanted.iter().zip(actual).position(|(w, a)| w != a);
    common.or_else(|| (wanted.len() != actual.len()).then(|| wanted.len().min(actual.len())))
}

/// What running the failure's threads one after another showed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serial {
    /// The failing execution interleaved the threads.
    No,
    /// It ran them one after another, and so did the reverse order: both
    /// failed (or there is only one order).
    FailsInEveryOrder,
    /// It ran them one after another; the reverse order passed.
    FailsInThisOrder,
}

/// Whether each thread ran in one stretch (no thread resumed after
/// another had run).
fn is_serial(schedule: &[ThreadId]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    for &t in schedule {
        if last != Some(t) && !seen.insert(t) {
            return false;
        }
        last = Some(t);
    }
    true
}

fn explanation(
    py: Python<'_>,
    exec: &RunRecord,
    kind: &str,
    message: &str,
    serial: Serial,
) -> PyResult<String> {
    let lines = trace_lines(py, exec)?;
    let mut text = format!("{kind} failure: {message}\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let bug = match (kind, serial) {
        ("deadlock", _) if !message.contains("wait-for cycle") => {
            // One thread (or several) waiting for what nobody will give:
            // not a cycle, so say what it waits for.
            let waits: Vec<&str> = message
                .lines()
                .filter(|l| l.trim_start().starts_with("thread '"))
                .map(str::trim)
                .collect();
            format!(
                "blocked forever, not a lock cycle: {}; no other thread is left to unblock it",
                waits.join("; ")
            )
        }
        ("deadlock", _) => explain::summary(BugKind::Deadlock, &lines, None),
        (_, Serial::FailsInEveryOrder) => "fails without any interleaving: not a concurrency bug \
             (it fails with the threads run one after another, in every order tried)"
            .into(),
        (_, Serial::FailsInThisOrder) => "fails when the threads run one after another in this \
             order but not in the reverse order: an order dependence, with no preemption needed"
            .into(),
        (_, Serial::No) => {
            let (bug, at) = explain::classify(&lines, false);
            explain::summary(bug, &lines, at)
        }
    };
    text.push_str(&format!("Bug: {bug}\n"));
    if !lines.is_empty() {
        text.push_str("Interleaving (shared accesses that conflict between threads):\n");
        text.push_str(&explain::render_trace(&lines));
    }
    Ok(text)
}

/// The explanation when `total_timeout` ran out before the trace could be
/// explained: the failure itself, without the trace analysis.
fn shortened_explanation(exec: &RunRecord, kind: &str, message: &str, total: Duration) -> String {
    format!(
        "{kind} failure: {message}\nBug: not classified: total_timeout ({total:?}) was reached \
         before the trace of {} steps could be explained (explanation shortened; raise \
         total_timeout or replay the counterexample for the full explanation).\n",
        exec.trace.len()
    )
}

/// Longest wait a timeout option may ask for; `inf` means this. Far beyond
/// any test, small enough that `Instant::now() + it` cannot overflow.
const NO_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A timeout option in seconds: `inf` (or anything past [`NO_LIMIT`]) means
/// no limit; `nan` and negatives are refused naming the option.
fn duration_arg(name: &str, secs: f64) -> PyResult<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds (inf for no limit), got {secs}"
        )));
    }
    Ok(Duration::try_from_secs_f64(secs).map_or(NO_LIMIT, |d| d.min(NO_LIMIT)))
}
/// Bounded passes of the iterative search (0, 1, 2), the default's DPOR, before the
/// rest: most bugs need at most two preemptions.
const ITERATIVE_MAX_BOUND: u32 = 2;

/// Executions each bounded pass may run before the next pass starts (what
/// it left runs later; nothing is repeated): with many threads the orders
/// needing no preemption alone can be millions.
const ITERATIVE_PASS_BUDGET: u64 = 200;

/// What the default search interleaves with its DPOR passes: uniform
/// random runs reach a preemption among many threads that a depth-first
/// pass gets to late, and PCT of depth 2 targets the one-preemption orders.
const MIXED_SAMPLERS: [Sampler; 2] = [Sampler::Random, Sampler::Pct(2)];

/// The portfolio's members besides DPOR: PCT of depths 1 to 3.
const PORTFOLIO_SAMPLERS: [Sampler; 3] = [Sampler::Pct(1), Sampler::Pct(2), Sampler::Pct(3)];

/// `_explore(...)`: see `frontrun.explore` for the meaning of each option.
#[pyfunction]
pub fn _explore<'py>(
    py: Python<'py>,
    pool: &Bound<'py, WorkerPool>,
    setup: &Bound<'py, PyAny>,
    threads: &Bound<'py, PyList>,
    invariant: &Bound<'py, PyAny>,
    teardown: Option<&Bound<'py, PyAny>>,
    options: &ExploreOptions,
) -> PyResult<ExploreOutcome> {
    crate::ffi_guard::guard(|| explore_body(py, pool, setup, threads, invariant, teardown, options))
}

fn explore_body<'py>(
    py: Python<'py>,
    pool: &Bound<'py, WorkerPool>,
    setup: &Bound<'py, PyAny>,
    threads: &Bound<'py, PyList>,
    invariant: &Bound<'py, PyAny>,
    teardown: Option<&Bound<'py, PyAny>>,
    options: &ExploreOptions,
) -> PyResult<ExploreOutcome> {
    let ExploreOptions {
        ref strategy,
        max_executions,
        preemption_bound,
        total_timeout,
        timeout_per_run,
        stop_on_first,
        max_attempts,
        seed,
        reproduce_on_failure,
        ref replay,
        max_ops,
        ref search_order,
        shrink_budget,
        ref substrate,
        progress,
    } = *options;
    let (strategy, replay, search_order) =
        (strategy.as_str(), replay.as_deref(), search_order.as_str());
    let coroutines = match substrate.as_str() {
        "threads" => false,
        "coroutines" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown substrate {other:?}: use \"threads\" or \"coroutines\""
            )))
        }
    };
    let threads: Vec<Bound<'py, PyAny>> = threads.iter().collect();
    // `add_root` classifies objects by type, which needs the sharing classifier's types
    // loaded before the first `setup()` state is walked.
    tracer::share::init(py)?;
    // The tracer's first use imports and runs helper code; done here, on the
    // controller, it cannot create cooperative locks inside the first
    // execution (which would make that execution differ from the next).
    ctx::bypass(|| tracer::code::statics(py).map(drop))?;
    let seed = seed.unwrap_or(0x5EED);
    let kind = match (replay, strategy) {
        (Some(tok), _) => StrategyKind::Replay {
            schedule: strategies::decode_token(tok).map_err(PyValueError::new_err)?,
        },
        (None, "dpor") => StrategyKind::Dpor {
            preemption_bound,
            search_order: strategies::search_order(search_order, seed)
                .map_err(PyValueError::new_err)?,
        },
        (None, "iterative") => StrategyKind::Iterative {
            max_bound: preemption_bound.unwrap_or(ITERATIVE_MAX_BOUND),
            pass_budget: ITERATIVE_PASS_BUDGET,
            search_order: strategies::search_order(search_order, seed)
                .map_err(PyValueError::new_err)?,
        },
        (None, "mixed" | "portfolio") => StrategyKind::Mixed {
            max_bound: preemption_bound.unwrap_or(ITERATIVE_MAX_BOUND),
            pass_budget: ITERATIVE_PASS_BUDGET,
            search_order: strategies::search_order(search_order, seed)
                .map_err(PyValueError::new_err)?,
            seed,
            samplers: if strategy == "mixed" {
                MIXED_SAMPLERS.to_vec()
            } else {
                PORTFOLIO_SAMPLERS.to_vec()
            },
        },
        (None, "random") => StrategyKind::Random {
            seed,
            attempts: max_attempts,
            max_ops,
        },
        (None, "pct") => StrategyKind::Pct {
            seed,
            depth: 3,
            attempts: max_attempts,
        },
        (None, other) => {
            return Err(PyValueError::new_err(format!(
                "unknown strategy {other:?}: use \"iterative\", \"mixed\", \"portfolio\", \"dpor\", \"random\" or \"pct\""
            )))
        }
    };
    let systematic = matches!(
        kind,
        StrategyKind::Dpor { .. } | StrategyKind::Iterative { .. } | StrategyKind::Mixed { .. }
    );
    let mixed = matches!(kind, StrategyKind::Mixed { .. });
    let kind_of_search = if matches!(kind, StrategyKind::Replay { .. }) {
        SearchKind::Replay
    } else {
        SearchKind::Search
    };
    let limit = match kind {
        StrategyKind::Dpor { .. } | StrategyKind::Iterative { .. } | StrategyKind::Mixed { .. } => {
            max_executions
        }
        StrategyKind::Replay { .. } => Some(1),
        _ => Some(max_executions.map_or(max_attempts, |m| m.min(max_attempts))),
    };
    let program = Program {
        pool,
        setup,
        names: thread_names(&threads),
        threads,
        invariant,
        teardown,
        run_timeout: duration_arg("timeout_per_run", timeout_per_run)?,
        coroutines,
    };
    let started = Instant::now();
    // Untraced library objects shared by this exploration (not the last).
    tracer::library::reset();
    tracer::opaque::take_untraced();
    let total = total_timeout
        .map(|t| duration_arg("total_timeout", t))
        .transpose()?;
    let mut strategy = strategies::make(&kind);
    let mut explored: u64 = 0;
    let mut first_failure: Option<(RunRecord, &'static str, String)> = None;
    let mut stopped: Option<String> = None;
    let mut finished = false;
    let mut diverged: Option<usize> = None;
    let mut summary = SearchSummary {
        timeout_per_run,
        ..SearchSummary::default()
    };
    // The pass of an iterative search that found the first failure.
    let mut failure_pass: Option<PassBound> = None;
    // The member of the search that ran the first failure ("dpor bound 1"…).
    let mut found_by: Option<String> = None;
    let mut shown = Progress::new(progress::mode(py, progress), started);
    let mut searching = String::new();
    loop {
        let cap_hit = limit.is_some_and(|m| explored >= m);
        let time_hit = total.is_some_and(|t| started.elapsed() >= t);
        if (cap_hit || time_hit) && !systematic {
            // Sampling is finished only when every requested attempt ran.
            finished = cap_hit
                && (limit.is_some_and(|m| m >= max_attempts)
                    || matches!(kind, StrategyKind::Replay { .. }));
            if finished {
                break;
            }
            if cap_hit {
                summary.stopped_by_max_executions = limit;
                stopped = Some(format!(
                    "max_executions ({explored}) was reached before max_attempts ({max_attempts})"
                ));
            } else {
                summary.total_timeout = total_timeout;
                stopped = Some(format!(
                    "total_timeout ({:?}) was reached after {explored} of {} executions",
                    total.unwrap_or_default(),
                    limit.unwrap_or(0)
                ));
            }
            break;
        }
        if !strategy.begin_execution() {
            finished = true;
            break;
        }
        if cap_hit || time_hit {
            if cap_hit {
                summary.stopped_by_max_executions = limit;
            } else {
                summary.total_timeout = total_timeout;
            }
            stopped = Some(if cap_hit {
                format!(
                    "max_executions ({explored}) was reached while DPOR still had interleavings to run"
                )
            } else {
                format!(
                    "total_timeout ({:?}) was reached after {explored} executions while DPOR still had interleavings to run",
                    total.unwrap_or_default()
                )
            });
            break;
        }
        let pass = strategy.pass_bound();
        searching = strategy.member();
        let (exec, s) = program.run(py, strategy)?;
        strategy = s;
        if let StrategyKind::Replay { schedule } = &kind {
            diverged = first_difference(schedule, &exec.schedule);
        }
        if !matches!(exec.verdict, RunEnd::Pruned) {
            explored += 1;
        }
        if let Some(text) = shown.tick(Instant::now(), explored, &searching) {
            progress::write(py, &text);
        }
        if summary.unexplored.is_none() {
            summary.unexplored = exec.unexplored;
        }
        match &exec.verdict {
            RunEnd::Passed | RunEnd::Pruned => {}
            RunEnd::TimedOut(m) => {
                summary.run_timeouts += 1;
                stopped = Some(format!("execution {explored}: {m}"));
                break;
            }
            RunEnd::Failed { kind, message } => {
                let (k, m) = (*kind, message.clone());
                if first_failure.is_none() {
                    first_failure = Some((exec, k, m));
                    failure_pass = pass;
                    found_by = Some(searching.clone());
                }
                if stop_on_first {
                    break;
                }
            }
        }
    }
    if let Some(text) = shown.finish(Instant::now(), explored, &searching) {
        progress::write(py, &text);
    }
    // A systematic search whose executions did not repeat their recorded
    // prefixes explored some other program: never a proof.
    let search_divergence = strategy.divergence().cloned();
    summary.diverged_in = search_divergence.as_ref().map(|d| d.execution);
    let hidden = tracer::library::shared();
    summary.untraced_state = hidden.is_some();
    let hidden_note = hidden.map(|(name, n)| {
        format!(
            "Untraced shared state: the threads share a {name} ({n} time(s) over the executions). \
             Its package's code is not traced, so a race inside it would be missed. Create it in \
             each thread instead of sharing it, or set FRONTRUN_TRACE_PACKAGES=1 to trace that \
             package.\n"
        )
    });
    let mut out = ExploreOutcome {
        executions_explored: explored,
        diverged: diverged.is_some() || search_divergence.is_some(),
        repeated_executions: strategy.repeated_executions(),
        found_by: found_by.clone(),
        preemption_bound_found: match failure_pass {
            Some(PassBound::Bounded(k)) => Some(k),
            _ => None,
        },
        ..ExploreOutcome::default()
    };
    let divergence_note = diverged
        .map(|k| {
            format!(
                "Note: the replay diverged from the token at step {k}: the code, the setup or \
                 the threads differ from when it was recorded, so this is not the same interleaving.\n"
            )
        })
        .or_else(|| {
            search_divergence
                .as_ref()
                .map(|d| divergence_text(py, d))
        });
    // Explaining and reproducing count against total_timeout too.
    let out_of_time = || total.is_some_and(|t| started.elapsed() >= t);
    if let Some((exec, kind, message)) = first_failure {
        let budget = if matches!(kind_of_search, SearchKind::Replay) {
            0
        } else {
            shrink_budget
        };
        let shrunk = program.shrink(py, exec, kind, message, budget)?;
        out.shrink_replays = shrunk.replays;
        out.preemptions = shrunk.counts.map(|c| c.preemptions);
        out.context_switches = shrunk.counts.map(|c| c.switches);
        let Shrunk {
            exec,
            kind,
            message,
            ..
        } = shrunk;
        let token = strategies::encode_token(&exec.schedule);
        let serial = if kind != "deadlock" && is_serial(&exec.schedule) && !out_of_time() {
            program.serial_in_reverse(py, &exec, seed)?
        } else {
            Serial::No
        };
        let mut reproduced = 0;
        let mut attempts = 0;
        for _ in 0..reproduce_on_failure {
            if out_of_time() {
                break;
            }
            let replayer = strategies::make(&StrategyKind::Replay {
                schedule: exec.schedule.clone(),
            });
            let (again, _) = program.run(py, replayer)?;
            attempts += 1;
            if let RunEnd::Failed { kind: k, .. } = again.verdict {
                reproduced += u32::from(k == kind);
            }
        }
        let mut text = match total {
            Some(t) if out_of_time() => shortened_explanation(&exec, kind, &message, t),
            _ => explanation(py, &exec, kind, &message, serial)?,
        };
        match failure_pass {
            Some(PassBound::Bounded(k)) => text.push_str(&format!(
                "Found in the pass of schedules with at most {k} preemption{} (iterative \
                 preemption bounding).\n",
                if k == 1 { "" } else { "s" }
            )),
            Some(PassBound::Unbounded) => {
                text.push_str("Found after the bounded passes (iterative preemption bounding).\n")
            }
            None => {
                if let (true, Some(by)) = (mixed, &found_by) {
                    text.push_str(&format!(
                        "Found by a randomized run ({by}) between the DPOR passes.\n"
                    ));
                }
            }
        }
        if attempts < reproduce_on_failure {
            text.push_str(&format!(
                "Reproduction stopped at total_timeout after {attempts} of {reproduce_on_failure} replays.\n"
            ));
        }
        let reproduce_on_failure = attempts;
        if reproduce_on_failure > 0 {
            text.push_str(&format!(
                "Reproduced {reproduced}/{reproduce_on_failure} times by replaying the counterexample.\n"
            ));
        }
        text.push_str(&format!(
            "Replay it with frontrun.replay({token:?}, setup, threads, invariant).\n"
        ));
        out.property_holds = Some(false);
        out.failure_kind = Some(kind);
        if let Some(n) = &divergence_note {
            text.push('\n');
            text.push_str(n);
        }
        out.explanation = text;
        out.counterexample = Some(token);
        out.reproduced = reproduced;
        out.reproduce_attempts = reproduce_on_failure;
        return Ok(out);
    }
    summary.executions = explored;
    summary.finished = finished;
    // Only the strategy knows whether it covered every trace (a bounded
    // search that never pruned for its bound did; sampling never does).
    summary.unbounded_dpor = finished && strategy.covered_every_trace().unwrap_or(false);
    let verdict = verdict::decide(&summary);
    // A replay that could not follow its token ran some other interleaving:
    // its passing proves nothing about the recorded one.
    let holds = if diverged.is_some() {
        None
    } else {
        verdict.property_holds()
    };
    out.property_holds = holds;
    out.exhausted = verdict.exhausted();
    let mut text = verdict.explanation(explored);
    match (&stopped, &kind) {
        (Some(why), _) => text.push_str(&format!(".\nWhat stopped it: {why}.")),
        (
            None,
            StrategyKind::Dpor { .. } | StrategyKind::Iterative { .. } | StrategyKind::Mixed { .. },
        ) if verdict.exhausted() => text.push('.'),
        (
            None,
            StrategyKind::Dpor {
                preemption_bound: Some(b),
                ..
            },
        ) => text.push_str(&format!(
            " (only schedules with at most {b} preemptions were run)."
        )),
        (None, StrategyKind::Random { .. } | StrategyKind::Pct { .. }) => {
            text.push_str(" (sampled schedules: not a proof).");
        }
        (None, StrategyKind::Replay { .. }) => {
            text.push_str(" (the replayed interleaving passed).")
        }
        (
            None,
            StrategyKind::Dpor { .. } | StrategyKind::Iterative { .. } | StrategyKind::Mixed { .. },
        ) => text.push('.'),
    }
    for n in divergence_note.iter().chain(hidden_note.iter()) {
        text.push('\n');
        text.push_str(n);
    }
    out.explanation = text;
    Ok(out)
}
