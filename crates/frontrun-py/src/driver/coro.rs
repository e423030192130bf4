//! The coroutine substrate: every explored thread of an execution is a
//! greenlet on the exploring OS thread, and handing the turn over is a
//! greenlet switch instead of a condvar hand-off between OS threads.
//!
//! The controller's own greenlet is the *hub*. It switches to the greenlet
//! that holds the turn; a greenlet that must wait for its turn (see
//! `Gate::wait_turn`) switches back to the hub, which switches to the next
//! turn holder. The gate's decision logic is the same on both substrates:
//! only the parking differs.
//!
//! frontrun keeps per-thread state in Rust thread-locals (the explored
//! thread's gate, its event sink, its identity, the tracer's per-thread
//! cache) and in the interpreter's thread state (`threading.local`'s
//! values, see `thread_locals`).
//! All greenlets share one OS thread, so every switch saves the leaving
//! greenlet's state and the resumed greenlet restores its own ([`switch`]).
//! The trace function itself is per OS thread and follows greenlet switches:
//! it is installed once, for the whole execution, by the hub.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use frontrun_engine::event::ThreadId;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;

use super::gate::{Abort, Gate, Switcher};
use super::pool::{Job, JobHandle};
use super::{ctx, identity};
use crate::{hooks, tracer};

/// The per-thread state of the running greenlet, set aside while another
/// one runs.
struct Locals {
    current: Option<(Arc<Gate>, ThreadId)>,
    sink: Option<Box<dyn hooks::EventSink>>,
    identity: identity::Saved,
    trace: tracer::SavedThread,
}

impl Locals {
    /// Take this greenlet's state out, leaving the thread-locals empty.
    fn save(py: Python<'_>) -> Locals {
        Locals {
            current: ctx::swap_current(None),
            sink: hooks::set_sink(None),
            identity: identity::save(py),
            trace: tracer::save_thread(),
        }
    }

    /// Put this greenlet's state back.
    fn restore(self, py: Python<'_>) {
        ctx::swap_current(self.current);
        hooks::set_sink(self.sink);
        identity::restore(py, self.identity);
        tracer::restore_thread(self.trace);
    }
}

/// Switch to greenlet `target` (passing `args` to its first run), keeping
/// the calling greenlet's per-thread state for when it is resumed.
fn switch<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<()> {
    let saved = Locals::save(py);
    let r = target.call_method1(pyo3::intern!(py, "switch"), args);
    saved.restore(py);
    r.map(drop)
}

enum Task {
    /// Submitted, its greenlet not created yet.
    Unstarted(Job),
    Started(Py<PyAny>),
    Done,
}

/// What every hub needs from Python, looked up once.
struct GreenletApi {
    getcurrent: Py<PyAny>,
    greenlet_type: Py<PyAny>,
    /// `frontrun._explore._run_coroutine_job(handle)`: runs jobs, one after
    /// another, for as long as its greenlet is reused.
    runner: Py<PyAny>,
}

fn statics(py: Python<'_>) -> PyResult<&'static GreenletApi> {
    static STATICS: GILOnceCell<GreenletApi> = GILOnceCell::new();
    STATICS.get_or_try_init(py, || {
        let greenlet = py.import("greenlet")?;
        Ok(GreenletApi {
            getcurrent: greenlet.getattr("getcurrent")?.unbind(),
            greenlet_type: greenlet.getattr("greenlet")?.unbind(),
            runner: py
                .import("frontrun._explore")?
                .getattr("_run_coroutine_job")?
                .unbind(),
        })
    })
}

/// At most this many finished greenlets wait on each OS thread for a next
/// job.
const IDLE_MAX: usize = 64;

thread_local! {
    /// Greenlets whose job ended, waiting (in `_run_coroutine_job`) for the
    /// next one. Reusing them, rather than making a greenlet per explored
    /// thread and execution, saves the interpreter's frame-stack chunk that
    /// every new greenlet maps and every dead one unmaps: two system calls
    /// and fresh pages per explored thread otherwise.
    static IDLE: RefCell<Vec<Py<PyAny>>> = const { RefCell::new(Vec::new()) };
}

/// The greenlets of one execution and the hub that runs them.
pub struct Hub {
    /// The controller's greenlet.
    hub: Py<PyAny>,
    /// By explored-thread id.
    tasks: Mutex<Vec<Task>>,
}

impl Hub {
    /// A hub on the calling (controller) greenlet.
    pub fn new(py: Python<'_>) -> PyResult<Hub> {
        // Found here, before anything is traced: finding them runs code.
        if !super::thread_locals::available(py) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the coroutine substrate cannot give each greenlet its own threading.local \
                 values on this interpreter: use substrate=\"threads\"",
            ));
        }
        Ok(Hub {
            hub: statics(py)?.getcurrent.call0(py)?,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// A greenlet for a new job, whose parent is the hub: an idle one, or a
    /// new one.
    fn greenlet_for_job<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let hub = self.hub.bind(py);
        while let Some(gr) = IDLE.with(|idle| idle.borrow_mut().pop()) {
            let gr = gr.into_bound(py);
            // Killed meanwhile (its runner failed, or the thread's
            // greenlets were torn down): not reusable.
            if gr.getattr(pyo3::intern!(py, "dead"))?.is_truthy()? {
                continue;
            }
            let parent = pyo3::intern!(py, "parent");
            if !gr.getattr(parent)?.is(hub) {
                gr.setattr(parent, hub)?;
            }
            return Ok(gr);
        }
        let st = statics(py)?;
        st.greenlet_type.bind(py).call1((st.runner.bind(py), hub))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue explored thread `job.tid`'s code; it starts when it first gets
    /// the turn (or, after an abort, only to report that it never ran).
    pub fn submit(&self, job: Job) {
        let mut tasks = self.lock();
        let tid = job.tid;
        while tasks.len() <= tid {
            tasks.push(Task::Done);
        }
        tasks[tid] = Task::Unstarted(job);
    }

    /// The hub of `gate`'s execution, on the coroutine substrate.
    pub fn of(gate: &Gate) -> Option<&Hub> {
        let any: &dyn Any = &**gate.hub()?;
        any.downcast_ref::<Hub>()
    }
}

impl Switcher for Hub {
    /// Called on an explored thread's greenlet that does not hold the turn:
    /// switch straight to the turn holder if its greenlet already runs
    /// (one switch instead of two through the hub), else to the hub, until
    /// this greenlet is switched to again.
    fn park(&self, py: Python<'_>, turn: Option<ThreadId>) -> PyResult<()> {
        let direct = turn.and_then(|t| match self.lock().get(t) {
            Some(Task::Started(gr)) => Some(gr.clone_ref(py)),
            _ => None,
        });
        match direct {
            Some(gr) => switch(py, gr.bind(py), ()),
            None => switch(py, self.hub.bind(py), ()),
        }
    }

    /// The greenlet of a job that ended waits in `_run_coroutine_job` for
    /// the next one, once it switched back to the hub.
    fn job_ended(&self, tid: ThreadId) {
        let task = match self.lock().get_mut(tid) {
            Some(t) => std::mem::replace(t, Task::Done),
            None => return,
        };
        if let Task::Started(gr) = task {
            IDLE.with(|idle| {
                let mut idle = idle.borrow_mut();
                if idle.len() < IDLE_MAX {
                    idle.push(gr);
                }
            });
        }
    }
}

impl Hub {
    /// Run the execution to its end: switch to whichever greenlet holds the
    /// turn until every job returned. After an abort (deadlock, run
    /// timeout, Ctrl-C) each remaining greenlet is resumed once more to
    /// unwind, and jobs that never started end without running.
    pub fn run_all(&self, py: Python<'_>, gate: &Arc<Gate>) -> PyResult<()> {
        let mut interrupt: Option<PyErr> = None;
        loop {
            if interrupt.is_none() {
                if let Err(e) = py.check_signals() {
                    gate.abort(Abort::Timeout("the exploration was interrupted".into()));
                    interrupt = Some(e);
                }
            }
            let aborted = gate.aborted().is_some();
            if !aborted && Instant::now() >= gate.deadline() {
                gate.abort(Abort::Timeout(format!(
                    "an execution did not finish within timeout_per_run ({:?})",
                    gate.run_timeout
                )));
                continue;
            }
            let target = {
                let tasks = self.lock();
                let live = |t: &usize| !matches!(tasks.get(*t), None | Some(Task::Done));
                if aborted {
                    (0..tasks.len()).find(live)
                } else {
                    match gate.turn() {
                        Some(t) if live(&t) => Some(t),
                        Some(t) => {
                            drop(tasks);
                            gate.abort(Abort::Internal(format!(
                                "thread {t} holds the turn but its code already returned"
                            )));
                            continue;
                        }
                        None if (0..tasks.len()).any(|t| live(&t)) => {
                            drop(tasks);
                            gate.abort(Abort::Internal(
                                "no thread holds the turn while some have not finished".into(),
                            ));
                            continue;
                        }
                        None => None,
                    }
                }
            };
            let Some(tid) = target else { break };
            let r = self.resume(py, gate, tid);
            if let Err(e) = r {
                // The runner itself failed (not the user's code, which it
                // reports through `JobHandle::end`): frontrun's own error.
                gate.abort(Abort::Internal(format!(
                    "an explored thread's greenlet failed: {e}"
                )));
                interrupt.get_or_insert(e);
            }
        }
        // Nothing of this execution may stay alive through its gate (a job
        // holds the gate that holds this hub).
        self.lock().clear();
        match interrupt {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Switch to `tid`'s greenlet (creating it on its first turn) until it
    /// parks or returns.
    fn resume(&self, py: Python<'_>, gate: &Arc<Gate>, tid: ThreadId) -> PyResult<()> {
        let task = std::mem::replace(&mut self.lock()[tid], Task::Done);
        let gr = match task {
            Task::Unstarted(job) => {
                let gr = self.greenlet_for_job(py)?;
                self.lock()[tid] = Task::Started(gr.clone().unbind());
                let handle = Py::new(py, JobHandle::coroutine(job, gate.start_of(tid)))?;
                let r = switch(py, &gr, (handle,));
                (gr, r)
            }
            Task::Started(gr) => {
                let gr = gr.into_bound(py);
                self.lock()[tid] = Task::Started(gr.clone().unbind());
                let r = switch(py, &gr, ());
                (gr, r)
            }
            Task::Done => return Ok(()),
        };
        let (gr, r) = gr;
        if r.is_err() {
            self.lock()[tid] = Task::Done;
            // Greenlets switch among themselves (`park`): the one whose
            // runner failed need not be the one the hub switched to.
            self.forget_dead(py)?;
        }
        drop(gr);
        r
    }

    /// Mark every greenlet that died as done.
    fn forget_dead(&self, py: Python<'_>) -> PyResult<()> {
        let started: Vec<(ThreadId, Py<PyAny>)> = self
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(t, task)| match task {
                Task::Started(gr) => Some((t, gr.clone_ref(py))),
                _ => None,
            })
            .collect();
        for (t, gr) in started {
            if gr
                .bind(py)
                .getattr(pyo3::intern!(py, "dead"))?
                .is_truthy()?
            {
                self.lock()[t] = Task::Done;
            }
        }
        Ok(())
    }
}

/// What the watchdog thread watches: the execution running on the
/// coroutine substrate, if any.
struct Watch {
    gate: Arc<Gate>,
    /// The exploring OS thread, where every greenlet runs.
    ident: u64,
    deadline: Instant,
    /// Distinguishes one arming from the next.
    generation: u64,
    fired: bool,
}

static WATCH: Mutex<Option<Watch>> = Mutex::new(None);
/// How often the watchdog looks at what it watches (arming it wakes
/// nobody).
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(50);
static WATCH_CV: std::sync::Condvar = std::sync::Condvar::new();
static WATCHDOG: std::sync::Once = std::sync::Once::new();
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn watch_lock() -> MutexGuard<'static, Option<Watch>> {
    WATCH.lock().unwrap_or_else(|e| e.into_inner())
}

/// While alive, a greenlet of `gate` that runs past the run deadline (plus
/// a margin for the hub's own check) without reaching a scheduling point —
/// an endless loop — is stopped with an asynchronous `ExplorationAborted`,
/// as a worker thread would be: the hub cannot take the OS thread back
/// from it otherwise. A greenlet blocked in C cannot be stopped this way.
pub struct Watchdog(u64);

impl Watchdog {
    pub fn arm(gate: &Arc<Gate>, margin: std::time::Duration) -> Watchdog {
        WATCHDOG.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("frontrun-watchdog".into())
                .spawn(watch_loop);
        });
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *watch_lock() = Some(Watch {
            gate: gate.clone(),
            ident: super::gate::thread_ident(),
            deadline: gate.deadline() + margin,
            generation,
            fired: false,
        });
        // No wake-up (a context switch per execution): the watchdog looks
        // again within `WATCH_POLL` at the latest.
        Watchdog(generation)
    }

    /// Stop watching; whether the watchdog sent a stop request (which the
    /// caller must make sure is not left pending).
    pub fn disarm(self) -> bool {
        let mut w = watch_lock();
        let fired = w
            .as_ref()
            .is_some_and(|w| w.generation == self.0 && w.fired);
        *w = None;
        fired
    }
}

fn watch_loop() {
    let mut w = watch_lock();
    loop {
        let due = match &*w {
            Some(watch) if !watch.fired => Some(watch.deadline),
            _ => None,
        };
        match due {
            None => {
                w = WATCH_CV
                    .wait_timeout(w, WATCH_POLL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            Some(d) if Instant::now() < d => {
                w = WATCH_CV
                    .wait_timeout(w, (d - Instant::now()).min(WATCH_POLL))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            Some(_) => {
                let generation = w.as_ref().map_or(0, |x| x.generation);
                drop(w);
                Python::with_gil(|py| stop_runaway(py, generation));
                w = watch_lock();
            }
        }
    }
}

/// The deadline passed with the GIL held by a greenlet: stop it, unless the
/// execution ended while we waited for the GIL.
fn stop_runaway(py: Python<'_>, generation: u64) {
    let mut w = watch_lock();
    let Some(watch) = w.as_mut().filter(|x| x.generation == generation) else {
        return;
    };
    watch.fired = true;
    watch.gate.abort(Abort::Timeout(format!(
        "an execution did not finish within timeout_per_run ({:?}): an explored thread \
         ran without reaching a scheduling point (an endless loop, or a call that blocks \
         the OS thread, which the coroutine substrate cannot run: use substrate=\"threads\")",
        watch.gate.run_timeout
    )));
    let exc = py.get_type::<super::ExplorationAborted>();
    // SAFETY: the GIL is held; the type object is alive and the call takes
    // its own reference.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(watch.ident as _, exc.as_ptr()) };
}
