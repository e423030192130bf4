//! SQL footprints: which tables and rows a statement reads, writes or locks.
