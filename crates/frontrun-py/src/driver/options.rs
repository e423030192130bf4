//! The options of one exploration and the outcome it reports: the one place
//! that lists them. `frontrun.explore`, `explore_dpor`,
//! `explore_interleavings` and `replay` pass keywords straight to
//! `ExploreOptions`, so the defaults live here only.

use pyo3::prelude::*;

/// How to explore: strategy, limits and reporting (see `frontrun.explore`).
#[pyclass(frozen, get_all, module = "frontrun._native")]
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    pub strategy: String,
    pub max_executions: Option<u64>,
    pub preemption_bound: Option<u32>,
    pub total_timeout: Option<f64>,
    pub timeout_per_run: f64,
    pub stop_on_first: bool,
    pub max_attempts: u64,
    pub seed: Option<u64>,
    pub reproduce_on_failure: u32,
    /// A replay token: rerun that interleaving instead of searching.
    pub replay: Option<String>,
    pub max_ops: Option<u64>,
    pub search_order: String,
    pub shrink_budget: u32,
    pub substrate: String,
    /// Show the progress of a long exploration on stderr.
    pub progress: bool,
}

#[pymethods]
impl ExploreOptions {
    #[new]
    #[pyo3(signature = (
        *,
        strategy = "mixed",
        max_executions = None,
        preemption_bound = None,
        total_timeout = None,
        timeout_per_run = 5.0,
        stop_on_first = true,
        max_attempts = 200,
        seed = None,
        reproduce_on_failure = 10,
        replay = None,
        max_ops = None,
        search_order = "lowest-first",
        shrink_budget = 128,
        substrate = "threads",
        progress = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        strategy: &str,
        max_executions: Option<u64>,
        preemption_bound: Option<u32>,
        total_timeout: Option<f64>,
        timeout_per_run: f64,
        stop_on_first: bool,
        max_attempts: u64,
        seed: Option<u64>,
        reproduce_on_failure: u32,
        replay: Option<String>,
        max_ops: Option<u64>,
        search_order: &str,
        shrink_budget: u32,
        substrate: &str,
        progress: bool,
    ) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            Ok(Self {
                strategy: strategy.to_owned(),
                max_executions,
                preemption_bound,
                total_timeout,
                timeout_per_run,
                stop_on_first,
                max_attempts,
                seed,
                reproduce_on_failure,
                replay,
                max_ops,
                search_order: search_order.to_owned(),
                shrink_budget,
                substrate: substrate.to_owned(),
                progress,
            })
        })
    }

    /// The options of the one unrecorded run before an exploration (see
    /// `_settle` in `frontrun._explore`): a single DPOR execution, no
    /// reproduction, no replay.
    fn settling(&self) -> PyResult<Self> {
        crate::ffi_guard::guard(|| {
            Ok(Self {
                strategy: "dpor".to_owned(),
                max_executions: Some(1),
                stop_on_first: true,
                reproduce_on_failure: 0,
                replay: None,
                seed: None,
                progress: false,
                ..self.clone()
            })
        })
    }

    fn __repr__(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| Ok(format!("{self:?}")))
    }
}

/// What one exploration found; `frontrun.ExploreResult` documents each field.
#[pyclass(frozen, get_all, module = "frontrun._native")]
#[derive(Clone, Debug, Default)]
pub struct ExploreOutcome {
    pub property_holds: Option<bool>,
    pub executions_explored: u64,
    pub exhausted: bool,
    pub failure_kind: Option<&'static str>,
    pub explanation: String,
    pub counterexample: Option<String>,
    pub reproduced: u32,
    pub reproduce_attempts: u32,
    pub diverged: bool,
    pub preemption_bound_found: Option<u32>,
    pub repeated_executions: u64,
    pub found_by: Option<String>,
    pub preemptions: Option<u32>,
    pub context_switches: Option<u32>,
    pub shrink_replays: u32,
}

#[pymethods]
impl ExploreOutcome {
    fn __repr__(&self) -> PyResult<String> {
        crate::ffi_guard::guard(|| Ok(format!("{self:?}")))
    }
}
