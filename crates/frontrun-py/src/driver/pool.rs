//! Persistent worker threads that run explored threads' code.
//!
//! Creating an OS thread per explored thread per execution would cost more
//! than a whole execution is allowed to, so workers are created once (by a
//! Python callable, so they are ordinary `threading` threads) and wait here,
//! GIL released, for jobs. A worker whose job hit the run timeout retires
//! when (if ever) its code returns: it may still be stuck and is never
//! handed another job.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use frontrun_engine::event::{Event, ThreadId};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::ctx;
use super::gate::{abort_error, Abort, Gate};
use crate::hooks::{self, EventSink};
use crate::tracer;

/// One explored thread's code, for one execution.
pub struct Job {
    pub gate: Arc<Gate>,
    pub tid: ThreadId,
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    /// Threads created and not yet exited.
    workers: usize,
    /// Workers running a job.
    busy: usize,
    shutdown: bool,
}

/// The pool; `spawner(pool)` must start one thread running `pool.serve()`.
#[pyclass(module = "frontrun._native", frozen)]
pub struct WorkerPool {
    st: Mutex<PoolState>,
    cv: Condvar,
    spawner: Py<PyAny>,
}

impl WorkerPool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make sure `n` more jobs can start without waiting for a worker.
    pub fn ensure(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        loop {
            {
                let mut st = slf.get().lock();
                if st.workers.saturating_sub(st.busy + st.jobs.len()) >= n {
                    return Ok(());
                }
                st.workers += 1;
            }
            // Our own thread creation must neither be traced nor scheduled,
            // nor see cooperative primitives.
            let saved = hooks::set_sink(None);
            let r = ctx::bypass(|| slf.get().spawner.call1(slf.py(), (slf,)));
            hooks::set_sink(saved);
            if let Err(e) = r {
                slf.get().lock().workers -= 1;
                return Err(e);
            }
        }
    }

    pub fn submit(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.cv.notify_all();
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
}

/// Run `job`, whose thread already holds the turn (or the run was aborted
/// before it did: `start` is the outcome of waiting for the turn).
fn run_job(py: Python<'_>, job: &Job, start: Result<i64, Abort>) {
    if let Err(a) = start {
        job.gate.finish(job.tid, Some(abort_error(&a)));
        job.gate.job_done();
        return;
    }
    ctx::set_current(Some((job.gate.clone(), job.tid)));
    let saved = hooks::set_sink(Some(Box::new(GateSink {
        gate: job.gate.clone(),
        tid: job.tid,
    })));
    let result = tracer::install(py).and_then(|()| {
        let r = job.func.call1(py, job.args.bind(py).clone());
        tracer::uninstall(py);
        r
    });
    hooks::set_sink(saved);
    ctx::set_current(None);
    job.gate.finish(job.tid, result.err());
    job.gate.job_done();
}

#[pymethods]
impl WorkerPool {
    #[new]
    fn new(spawner: Py<PyAny>) -> Self {
        WorkerPool {
            st: Mutex::default(),
            cv: Condvar::new(),
            spawner,
        }
    }

    /// The body of a worker thread: run jobs until shutdown.
    fn serve(&self, py: Python<'_>) {
        let mut handed_over: Option<Arc<Gate>> = None;
        loop {
            let job = py.allow_threads(|| {
                // The thread our finished job passed the turn to can run now
                // that this one holds no GIL.
                if let Some(g) = handed_over.take() {
                    g.wake();
                }
                let mut st = self.lock();
                loop {
                    if st.shutdown {
                        return None;
                    }
                    if let Some(j) = st.jobs.pop_front() {
                        st.busy += 1;
                        drop(st);
                        // Wait for the turn before taking the GIL: a worker
                        // that took it now would only stall the others.
                        let start = j.gate.wait_turn_nogil(j.tid);
                        return Some((j, start));
                    }
                    // Idle workers only wait for work or shutdown; the
                    // timeout just re-checks both.
                    st = self
                        .cv
                        .wait_timeout(st, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            });
            let Some((job, start)) = job else { break };
            run_job(py, &job, start);
            let retire = matches!(job.gate.aborted(), Some(Abort::Timeout(_)));
            handed_over = Some(job.gate.clone());
            drop(job);
            let mut st = self.lock();
            st.busy -= 1;
            if retire {
                break;
            }
        }
        if let Some(g) = handed_over {
            py.allow_threads(|| g.wake());
        }
        self.lock().workers -= 1;
        self.cv.notify_all();
    }

    /// Ask every idle worker to exit.
    fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        for job in st.jobs.drain(..) {
            job.gate.job_done();
        }
        self.cv.notify_all();
    }

    /// (workers alive, workers busy): for tests of the pool's lifecycle.
    fn stats(&self) -> (usize, usize) {
        let st = self.lock();
        (st.workers, st.busy)
    }
}
