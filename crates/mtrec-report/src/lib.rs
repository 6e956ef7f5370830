//! Human-facing output: terminal tables of per-task metrics.
//!
//! Machine-readable output is plain serde JSON of the engine's reports; this crate renders the
//! same figures for people, so the two never disagree.

pub mod table;

pub use table::{MetricsRow, metrics_table};
