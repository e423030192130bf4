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
        // One job, one idle worker: waking them all would cost a context
        // switch each for nothing.
        self.cv.notify_one();
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

/// One job handed to a worker thread. The worker's Python loop calls the
/// user's function itself, between `begin` and `end`, so no Rust frame is on
/// its stack while user code runs: an abandoned (stuck) worker that wakes up
/// during interpreter shutdown is then ended like any daemon thread.
#[pyclass(module = "frontrun._native")]
pub struct JobHandle {
    job: Job,
    start: Option<Result<i64, Abort>>,
    began: bool,
}

#[pymethods]
impl JobHandle {
    /// Install the scheduling and the tracer on this thread and return
    /// `(function, args)` to call, or `None` when the run was stopped before
    /// this thread's turn came.
    fn begin(&mut self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        if !matches!(self.start, Some(Ok(_))) {
            return Ok(None);
        }
        let job = &self.job;
        ctx::set_current(Some((job.gate.clone(), job.tid)));
        hooks::set_sink(Some(Box::new(GateSink {
            gate: job.gate.clone(),
            tid: job.tid,
        })));
        self.began = true;
        tracer::install(py)?;
        Ok(Some((job.func.clone_ref(py), job.args.clone_ref(py))))
    }

    /// The function returned (`error` is None) or raised: undo `begin`, pass
    /// the turn on. Returns whether this worker must retire (its run timed
    /// out, so it may have been stuck).
    #[pyo3(signature = (error = None))]
    fn end(&mut self, py: Python<'_>, error: Option<Bound<'_, PyAny>>) -> bool {
        let job = &self.job;
        if self.began {
            tracer::uninstall(py);
            hooks::set_sink(None);
            ctx::set_current(None);
        }
        let err = match (self.start.take(), error) {
            (Some(Err(a)), _) => Some(abort_error(&a)),
            (_, Some(e)) => Some(PyErr::from_value(e)),
            _ => None,
        };
        job.gate.finish(job.tid, err);
        job.gate.job_done();
        matches!(job.gate.aborted(), Some(Abort::Timeout(_)))
    }
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

    /// Wait (GIL released) for the next job and for its thread's turn;
    /// `None` at shutdown. `previous` is the job this worker just ended: the
    /// thread it passed the turn to is woken once this one holds no GIL.
    #[pyo3(signature = (previous = None))]
    fn next_job(
        &self,
        py: Python<'_>,
        previous: Option<Py<JobHandle>>,
    ) -> PyResult<Option<JobHandle>> {
        let handed_over = previous.map(|p| {
            self.lock().busy -= 1;
            p.borrow(py).job.gate.clone()
        });
        let next = py.allow_threads(|| {
            if let Some(g) = handed_over {
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
                    // Wait for the turn before taking the GIL: a worker that
                    // took it now would only stall the others.
                    let start = j.gate.wait_turn_nogil(j.tid);
                    return Some((j, start));
                }
                // Idle workers only wait for work or shutdown; the timeout
                // just re-checks both.
                st = self
                    .cv
                    .wait_timeout(st, Duration::from_millis(500))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        });
        Ok(next.map(|(job, start)| JobHandle {
            job,
            start: Some(start),
            began: false,
        }))
    }

    /// The worker thread is leaving (shutdown, or retiring after `job`).
    #[pyo3(signature = (job = None))]
    fn worker_exit(&self, py: Python<'_>, job: Option<Py<JobHandle>>) {
        if let Some(j) = job {
            let gate = j.borrow(py).job.gate.clone();
            py.allow_threads(|| gate.wake());
            self.lock().busy -= 1;
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
