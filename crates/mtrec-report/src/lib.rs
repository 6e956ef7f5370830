//! Human-facing output: terminal tables of per-task metrics and SVG charts.
//!
//! Machine-readable output is plain serde JSON of the engine's reports; this crate renders the
//! same figures for people, so the two never disagree.

pub mod plot;
pub mod table;

pub use plot::{Panel, Series, write_svg};
pub use table::{MetricsRow, metrics_table};
