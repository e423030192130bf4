//! Database statements as scheduling points: footprints of SQL statements
//! (`frontrun-sql`), the per-database lock model, and the event each
//! intercepted `execute`/`commit` emits through [`crate::hooks::emit`].

mod capture;
mod event;
mod footprint;
mod model;
mod opaque;
mod params;
pub mod sites;
mod wait;

use pyo3::prelude::*;

pub use footprint::PyFootprint;
pub use model::PyDbModel;

/// Add the database classes and functions to `frontrun._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFootprint>()?;
    m.add_class::<PyDbModel>()?;
    m.add_function(wrap_pyfunction!(footprint::sql_footprint, m)?)?;
    m.add_function(wrap_pyfunction!(footprint::sql_footprint_many, m)?)?;
    m.add_function(wrap_pyfunction!(event::db_event, m)?)?;
    m.add_function(wrap_pyfunction!(event::db_wait, m)?)?;
    m.add_function(wrap_pyfunction!(sites::db_site, m)?)?;
    m.add_function(wrap_pyfunction!(sites::db_site_result, m)?)?;
    m.add_function(wrap_pyfunction!(sites::db_site_text, m)?)?;
    m.add_function(wrap_pyfunction!(sites::db_sites_clear, m)?)?;
    m.add_function(wrap_pyfunction!(capture::_db_capture_start, m)?)?;
    m.add_function(wrap_pyfunction!(capture::_db_capture_stop, m)?)?;
    m.add_function(wrap_pyfunction!(opaque::_db_call, m)?)?;
    Ok(())
}
