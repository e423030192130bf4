//! The scheduling engine of frontrun, free of Python.
//!
//! A driver (the PyO3 module, or a test harness) runs real threads and stops
//! each one at its *scheduling points*. At every point it describes what each
//! thread is about to do ([`event::Event`]) and asks a [`strategy::Strategy`]
//! which thread goes next. Strategies never see execution state beyond that.

pub mod coop;
pub mod error;
pub mod event;
pub mod explain;
pub mod hash;
pub mod marker_files;
pub mod marker_schedule;
pub mod markers;
pub mod rng;
pub mod strategy;
pub mod token;
pub mod turns;
pub mod verdict;
pub mod waitfor;
