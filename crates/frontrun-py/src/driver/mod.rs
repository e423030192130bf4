//! Running explored threads under a strategy: the gate, the worker pool,
//! cooperative primitives and the exploration loop.

pub mod coro;
pub mod ctx;
pub mod divergence;
pub mod explore;
pub mod gate;
pub mod identity;
pub mod options;
pub mod pool;
pub mod progress;
pub mod real_locks;
pub mod spawn;
pub mod stall;
pub mod sync;
pub mod thread_locals;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    ExplorationAborted,
    pyo3::exceptions::PyBaseException,
    "Raised inside explored threads to unwind them when frontrun stops an execution (deadlock, timeout)."
);

/// Add the driver's classes and functions to `frontrun._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add(
        "ExplorationAborted",
        m.py().get_type::<ExplorationAborted>(),
    )?;
    m.add_class::<pool::WorkerPool>()?;
    m.add_class::<pool::JobHandle>()?;
    m.add_class::<sync::CoopLock>()?;
    m.add_class::<sync::CoopCondition>()?;
    m.add_class::<options::ExploreOptions>()?;
    m.add_class::<options::ExploreOutcome>()?;
    m.add_function(wrap_pyfunction!(explore::_explore, m)?)?;
    m.add_function(wrap_pyfunction!(ctx::_coop_active, m)?)?;
    m.add_function(wrap_pyfunction!(ctx::_forget_exploration_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(ctx::_coop_scheduled, m)?)?;
    m.add_function(wrap_pyfunction!(ctx::_coop_register, m)?)?;
    m.add_function(wrap_pyfunction!(ctx::_coop_vclock, m)?)?;
    m.add_function(wrap_pyfunction!(spawn::_coop_spawn, m)?)?;
    m.add_function(wrap_pyfunction!(spawn::_coop_join, m)?)?;
    m.add_function(wrap_pyfunction!(spawn::_coop_alive, m)?)?;
    m.add_function(wrap_pyfunction!(spawn::_coop_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(spawn::_driver_emit, m)?)?;
    m.add_function(wrap_pyfunction!(identity::_coop_get_ident, m)?)?;
    m.add_function(wrap_pyfunction!(identity::_coop_get_native_id, m)?)?;
    m.add_function(wrap_pyfunction!(identity::_coop_thread_ids, m)?)?;
    Ok(())
}
