//! Persistent worker threads that run explored threads' code.
//!
//! Creating an OS thread per explored thread, even once per exploration,
//! would cost more than a whole execution is allowed to, so workers are
//! created on demand (by a Python callable, so they are ordinary `threading`
//! daemon threads), serve every exploration of the process, and wait here,
//! GIL released, for jobs. An idle worker leaves by itself after a short
//! while, and `shutdown` (also run at exit) sends them all away.
//! A worker whose job hit the run timeout retires when (if ever) its code returns: it may still be stuck and is never
//! handed another job.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use frontrun_engine::event::{Event, ThreadId};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::ctx;
use super::gate::{abort_error, consume_stop_request, thread_ident, Abort, Gate};
use super::identity;
use crate::hooks::{self, EventSink};
use crate::tracer;

/// One explored thread's code, for one execution.
pub struct Job {
    pub gate: Arc<Gate>,
    pub tid: ThreadId,
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
    /// The explored thread's name (what `current_thread().name` says).
    pub name: String,
    /// The `threading.Thread` the program started, if it started one.
    pub thread: Option<Py<PyAny>>,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    /// Threads created and not yet leaving (a leaving thread decrements
    /// this itself, under the lock, so `submit` never counts on it).
    workers: usize,
    /// Workers running a job.
    busy: usize,
    /// Idle workers promised to jobs about to be submitted.
    reserved: usize,
    shutdown: bool,
}

impl PoolState {
    /// Workers free for jobs not yet promised to anyone.
    fn idle(&self) -> usize {
        self.workers
            .saturating_sub(self.busy + self.jobs.len() + self.reserved)
    }
}

struct PoolInner {
    st: Mutex<PoolState>,
    cv: Condvar,
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pool; `spawner(pool)` must start one thread running `pool.serve()`.
/// Workers outlive an exploration (starting threads costs more than a whole
/// execution may), and leave by themselves after `idle_exit` without work.
#[pyclass(module = "frontrun._native", frozen)]
pub struct WorkerPool {
    inner: Arc<PoolInner>,
    spawner: Py<PyAny>,
    idle_exit: Duration,
}

impl WorkerPool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.inner.lock()
    }

    /// Reserve `n` idle workers for the next `n` `submit`s, starting threads
    /// as needed. A reserved worker does not leave on idleness, so a job is
    /// never queued with nobody to take it.
    pub fn ensure(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        let pool = slf.get();
        loop {
            {
                let mut st = pool.lock();
                if st.shutdown {
                    return Err(PyRuntimeError::new_err(
                        "the frontrun worker pool was shut down",
                    ));
                }
                if st.idle() >= n {
                    st.reserved += n;
                    return Ok(());
                }
                st.workers += 1;
            }
            // Our own thread creation must neither be traced nor scheduled,
            // nor see cooperative primitives.
            let saved = hooks::set_sink(None);
            let r = ctx::bypass(|| pool.spawner.call1(slf.py(), (slf,)));
            hooks::set_sink(saved);
            if let Err(e) = r {
                pool.lock().workers -= 1;
                return Err(e);
            }
        }
    }

    /// Queue a job for a worker reserved by `ensure`.
    pub fn submit(&self, job: Job) {
        let mut st = self.lock();
        st.reserved = st.reserved.saturating_sub(1);
        st.jobs.push_back(job);
        drop(st);
        // One job, one idle worker: waking them all would cost a context
        // switch each for nothing.
        self.inner.cv.notify_one();
    }
}

struct GateSink {
    gate: Arc<Gate>,
    tid: ThreadId,
}

impl EventSink for GateSink {
    fn on_event(&mut self, py: Python<'_>, event: Event) -> PyResult<()> {
        self.gate
            .point(py, self.tid, event, None, None, None)
            .map(drop)
    }

    fn on_event_at(
        &mut self,
        py: Python<'_>,
        event: Event,
        loc: Option<frontrun_engine::turns::Loc>,
    ) -> PyResult<()> {
        self.gate
            .point(py, self.tid, event, None, loc, None)
            .map(drop)
    }
}

/// One job handed to a worker thread. The worker's Python loop calls the
/// user's function itself, between `begin` and `end`, so no Rust frame is on
/// its stack while user code runs: an abandoned (stuck) worker that wakes up
/// during interpreter shutdown is then ended like any daemon thread.
#[pyclass(module = "frontrun._native")]
pub struct JobHandle {
    job: Job,
    /// `None` on the coroutine substrate: the job runs as a greenlet on the
    /// controller's OS thread, which already traces (see `coro`).
    pool: Option<Arc<PoolInner>>,
    start: Option<Result<i64, Abort>>,
    began: bool,
}

impl JobHandle {
    /// A job run as a greenlet by the coroutine hub; `start` as for a worker.
    pub fn coroutine(job: Job, start: Result<i64, Abort>) -> JobHandle {
        JobHandle {
            job,
            pool: None,
            start: Some(start),
            began: false,
        }
    }
}

#[pymethods]
impl JobHandle {
    /// Install the scheduling and the tracer on this thread and return
    /// `(function, args)` to call, or `None` when the run was stopped before
    /// this thread's turn came.
    fn begin(&mut self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        crate::ffi_guard::guard(|| {
            if !matches!(self.start, Some(Ok(_))) {
                return Ok(None);
            }
            let job = &self.job;
            identity::enter(
                py,
                job.tid,
                job.name.clone(),
                job.thread.as_ref().map(|t| t.clone_ref(py)),
            );
            ctx::set_current(Some((job.gate.clone(), job.tid)));
            hooks::set_sink(Some(Box::new(GateSink {
                gate: job.gate.clone(),
                tid: job.tid,
            })));
            self.began = true;
            if self.pool.is_some() {
                job.gate.set_running_on(job.tid, Some(thread_ident()));
                tracer::install(py)?;
            }
            Ok(Some((job.func.clone_ref(py), job.args.clone_ref(py))))
        })
    }

    /// The function returned (`error` is None) or raised: undo `begin`, pass
    /// the turn on. Returns whether this worker must retire (its run timed
    /// out, so it may have been stuck).
    #[pyo3(signature = (error = None))]
    fn end(&mut self, py: Python<'_>, error: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
        crate::ffi_guard::guard(|| {
            Ok({
                let job = &self.job;
                let threaded = self.pool.is_some();
                if self.began {
                    if threaded {
                        job.gate.set_running_on(job.tid, None);
                        // A stop request that arrived after the code returned is
                        // void: take it here, before the worker's own loop could
                        // receive it.
                        if job.gate.was_interrupted() {
                            consume_stop_request(py);
                        }
                        tracer::uninstall(py);
                    }
                    hooks::set_sink(None);
                    ctx::set_current(None);
                    identity::exit(py);
                }
                let err = match (self.start.take(), error) {
                    (Some(Err(a)), _) => Some(abort_error(&a)),
                    (_, Some(e)) => Some(PyErr::from_value(e)),
                    _ => None,
                };
                job.gate.finish(job.tid, err);
                // Not busy once the controller may return: after `explore`, no
                // worker counts as running work.
                if let Some(pool) = &self.pool {
                    pool.lock().busy -= 1;
                }
                job.gate.job_done();
                if let Some(hub) = job.gate.hub() {
                    hub.job_ended(job.tid);
                }
                threaded && matches!(job.gate.aborted(), Some(Abort::Timeout(_)))
            })
        })
    }
}

#[pymethods]
impl WorkerPool {
    #[new]
    #[pyo3(signature = (spawner, idle_exit = 1.0))]
    fn new(spawner: Py<PyAny>, idle_exit: f64) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            let idle_exit = Duration::try_from_secs_f64(idle_exit)
                .map_err(|e| PyValueError::new_err(format!("idle_exit: {e}")))?;
            Ok(WorkerPool {
                inner: Arc::new(PoolInner {
                    st: Mutex::default(),
                    cv: Condvar::new(),
                }),
                spawner,
                idle_exit,
            })
        })
    }

    /// Wait (GIL released) for the next job and for its thread's turn;
    /// `None` when this worker must leave (shutdown, or idle for
    /// `idle_exit`), in which case it no longer counts as a worker.
    /// `previous` is the job this worker just ended: the thread it passed
    /// the turn to is woken once this one holds no GIL.
    #[pyo3(signature = (previous = None))]
    fn next_job(
        &self,
        py: Python<'_>,
        previous: Option<Py<JobHandle>>,
    ) -> PyResult<Option<JobHandle>> {
        crate::ffi_guard::guard(|| {
            let handed_over = previous.map(|p| p.borrow(py).job.gate.clone());
            let next = py.allow_threads(|| {
                if let Some(g) = handed_over {
                    g.wake();
                }
                let mut st = self.lock();
                let idle_since = Instant::now();
                loop {
                    if st.shutdown {
                        st.workers -= 1;
                        return None;
                    }
                    if let Some(j) = st.jobs.pop_front() {
                        st.busy += 1;
                        drop(st);
                        // Wait for the turn before taking the GIL: a worker that
                        // took it now would only stall the others.
                        let start = j.gate.wait_turn_nogil(j.tid);
                        return Some((j, start));
                    }
                    let idle_for = idle_since.elapsed();
                    // Only a worker nobody was promised may leave.
                    if idle_for >= self.idle_exit && st.idle() > 0 {
                        st.workers -= 1;
                        return None;
                    }
                    let wait = self.idle_exit.saturating_sub(idle_for);
                    st = self
                        .inner
                        .cv
                        .wait_timeout(st, wait.max(Duration::from_millis(1)))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            });
            Ok(next.map(|(job, start)| JobHandle {
                job,
                pool: Some(self.inner.clone()),
                start: Some(start),
                began: false,
            }))
        })
    }

    /// The worker thread retires after `job`, whose run timed out.
    fn worker_exit(&self, py: Python<'_>, job: Py<JobHandle>) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            let gate = job.borrow(py).job.gate.clone();
            py.allow_threads(|| gate.wake());
            self.lock().workers -= 1;
            self.inner.cv.notify_all();
            Ok(())
        })
    }

    /// Ask every idle worker to leave; the pool takes no more jobs.
    fn shutdown(&self) -> PyResult<()> {
        crate::ffi_guard::guard(|| {
            let mut st = self.lock();
            st.shutdown = true;
            for job in st.jobs.drain(..) {
                job.gate.job_done();
            }
            self.inner.cv.notify_all();
            Ok(())
        })
    }

    /// (workers alive, workers busy): for tests of the pool's lifecycle.
    fn stats(&self) -> PyResult<(usize, usize)> {
        crate::ffi_guard::guard(|| {
            Ok({
                let st = self.lock();
                (st.workers, st.busy)
            })
        })
    }
}
